"""The one door between every evaluation and the detector: a device's series in, per-row flags out.

Every scored evaluation (`gridmon eval` on the catalogue, `--csv`, `nab`, `skab`, the alarm rate)
and the causality test call `detect_series` and nothing else of `gridmon.detection`, so putting a
new detector under evaluation is a change to this module only.

The contract:

    detect_series(frame, train_rows, *, safety=True, limits=None) -> Verdict

- `frame`: ONE device's readings in time order (non-decreasing `ts`): a column `ts` (UTC epoch
  seconds, float) and one numeric column per metric (`voltage`, `current`, `temperature`, or any
  other name; NaN is allowed). A `device_id` column is optional.
- `train_rows`: the leading rows the detector may learn from (NAB's probation, SKAB's 400 rows,
  a simulated device's fault-free history). They are never flagged.
- `safety`: apply the grid's safety limits (`limits`, or the global defaults when None) to the
  core metrics; off for equipment they do not describe.
- `Verdict.flags[i]` (bool) says whether row i is in alarm — the device's alarm is any metric
  of any detector — and `Verdict.score[i]` (float) how strongly (1.0 at a detector's threshold).
  Both have one entry per frame row; training rows get False and 0.0.

What the verdict of row i may depend on: rows 0..i only (`tests/test_causality.py` holds every
implementation to that).

Today's implementation is the streaming detector the scan runs (`gridmon.detection.stream`):
a fresh device state scores the whole series in one call with alarms allowed from row
`train_rows` on (`score_batch`, the function behind the scan's `score_rows`), and the flags are
its alarm state; the score is its ratio to the threshold. With `forest` (the default, as in
production) an IsolationForest is first trained on the training rows' replayed context
features (`normal_feature_rows`, when there are enough, and for devices with at least two
metrics: it is there for relations between metrics) and scored inside the loop;
`use_forest(False)` measures the detector without it; `use_refit_phase(n)` shifts the periodic
refits of every threshold by n readings (`DetectorParams.refit_phase`, for `--phases`);
`alarm_budget(x)` scores a block with another alarm budget (`--budget`). Safety
limits add their findings (score 1 + relative excess). Trained forests are kept in a small
cache keyed by the training rows' content, so a fleet whose histories repeat trains each forest
once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from gridmon.detection.limits import SafetyLimits
from gridmon.detection.safety import check_safety
from gridmon.detection.stream.device import metric_columns, score_batch
from gridmon.detection.stream.forest import MIN_METRICS, FlatForest, InsufficientData, train_flat_forest
from gridmon.detection.stream.kernel import RECOMPUTE_EVERY
from gridmon.detection.stream.params import DetectorParams
from gridmon.detection.stream.run import DEFAULT_PARAMS
from gridmon.detection.stream.state import DeviceState
from gridmon.detection.stream.training import normal_feature_rows

log = logging.getLogger(__name__)

SERIES_DEVICE = "series"
_CACHE_SIZE = 32
_forests: OrderedDict[str, FlatForest | None] = OrderedDict()
_settings = {"forest": True}
_params = {"detector": DEFAULT_PARAMS}
MAX_BUDGET = 10.0  # the deployment setting's own upper bound (gridmon.config)


def use_forest(enabled: bool) -> None:
    """Score with (default) or without the IsolationForest, to measure its contribution."""
    _settings["forest"] = bool(enabled)


def use_refit_phase(phase: int) -> None:
    """Shift every threshold's periodic refits by `phase` readings (0 restores the default)."""
    if not 0 <= phase < RECOMPUTE_EVERY:
        raise ValueError(f"refit phase must be 0 to {int(RECOMPUTE_EVERY) - 1} readings, got {phase}")
    _params["detector"] = replace(_params["detector"], refit_phase=float(phase))


def detector_params() -> DetectorParams:
    """The parameters every `detect_series` call scores with now."""
    return _params["detector"]


@contextmanager
def alarm_budget(alarms_per_day: float) -> Iterator[None]:
    """Score with this alarm budget (`DetectorParams.alarms_per_day`, the deployment's
    `GRIDMON_ALARMS_PER_DEVICE_DAY`) inside the block; the previous one is restored after it."""
    budget = float(alarms_per_day)
    if not 0.0 < budget <= MAX_BUDGET:
        raise ValueError(f"the alarm budget must be above 0 and at most {MAX_BUDGET:g} per device-day, got {budget:g}")
    before = _params["detector"]
    _params["detector"] = replace(before, alarms_per_day=budget)
    try:
        yield
    finally:
        _params["detector"] = replace(_params["detector"], alarms_per_day=before.alarms_per_day)


@dataclass(frozen=True)
class Verdict:
    """Per-row outcome for one series: `flags` (bool) and `score` (float), one entry per row."""

    flags: np.ndarray
    score: np.ndarray


def _with_device(frame: pd.DataFrame) -> pd.DataFrame:
    if "ts" not in frame.columns:
        raise ValueError("a series needs a 'ts' column (UTC epoch seconds)")
    ts = frame["ts"].to_numpy(dtype=float)
    if ts.size > 1 and bool(np.any(np.diff(ts) < 0)):
        raise ValueError("a series must be in time order (non-decreasing ts)")
    out = frame.reset_index(drop=True)
    if "device_id" not in out.columns:
        out = out.assign(device_id=SERIES_DEVICE)
    elif out["device_id"].nunique() > 1:
        raise ValueError("detect_series scores one device at a time")
    return out


def _cache_key(train: pd.DataFrame, params: DetectorParams) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(repr(params).encode())
    digest.update("\0".join(map(str, train.columns)).encode())
    digest.update(pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _forest(train: pd.DataFrame) -> FlatForest | None:
    """The forest for these training rows (None when they give too few normal rows), trained once
    per detector configuration: the rows are replayed with the parameters that score them, as the
    retrain replays with the scan's."""
    params = _params["detector"]
    key = _cache_key(train, params)
    if key in _forests:
        _forests.move_to_end(key)
        return _forests[key]
    try:
        model: FlatForest | None = train_flat_forest(normal_feature_rows(train, params=params))
    except InsufficientData:
        model = None
    _forests[key] = model
    while len(_forests) > _CACHE_SIZE:
        _forests.popitem(last=False)
    return model


def detect_series(
    frame: pd.DataFrame,
    train_rows: int,
    *,
    safety: bool = True,
    limits: SafetyLimits | None = None,
) -> Verdict:
    """Flags and scores for every row of one device's series (see the module docstring)."""
    data = _with_device(frame)
    n = len(data)
    n_train = min(max(int(train_rows), 0), n)
    flags = np.zeros(n, dtype=bool)
    score = np.zeros(n, dtype=float)
    if n_train == n:
        return Verdict(flags, score)
    metrics = metric_columns(data)
    wanted = _settings["forest"] and n_train > 0 and len(metrics) >= MIN_METRICS
    forest = _forest(data.iloc[:n_train][["ts", *metrics]]) if wanted else None
    _, result = score_batch(
        DeviceState.new(metrics),
        data[["device_id", "ts", *metrics]],
        params=_params["detector"],
        forest=forest,
        start=n_train,
    )
    flags[n_train:] = result.output.flag[n_train:]
    score[n_train:] = result.output.ratio[n_train:]
    if safety:
        scored = data.iloc[n_train:]
        found = check_safety(scored, None, limits).findings
        if found:
            excess = pd.Series([1.0 + f.score for f in found], index=[f.ts for f in found]).groupby(level=0).max()
            ts = scored["ts"].to_numpy(dtype=float)
            hit = pd.Series(ts).map(excess).to_numpy(dtype=float)
            mask = ~np.isnan(hit)
            flags[n_train:] |= mask
            score[n_train:] = np.maximum(score[n_train:], np.nan_to_num(hit, nan=0.0))
    return Verdict(flags, score)


def null_verdict(n: int) -> Verdict:
    """The detector that never fires: the floor every table prints."""
    return Verdict(np.zeros(n, dtype=bool), np.zeros(n, dtype=float))


def everything_verdict(n: int, train_rows: int) -> Verdict:
    """The detector that flags every scored row: the other trivial row of every table."""
    flags = np.zeros(n, dtype=bool)
    flags[min(max(train_rows, 0), n) :] = True
    return Verdict(flags, flags.astype(float))
