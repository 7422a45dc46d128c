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

Today's implementation: an IsolationForest trained on the training rows (when there are at
least `MIN_TRAINING_SAMPLES`), then `gridmon.detection.pipeline.run_pipeline` over the rest with
the training rows as history — the same functions the scan job calls. Rows that share a
timestamp share a verdict (findings are keyed by time). Trained forests are kept in a small cache
keyed by the training rows' content, so scoring a growing series row by row, or a fleet whose
histories repeat, trains each forest once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmon.detection.forest import MIN_TRAINING_SAMPLES, TrainedForest, train_forest
from gridmon.detection.limits import SafetyLimits
from gridmon.detection.pipeline import run_pipeline

log = logging.getLogger(__name__)

SERIES_DEVICE = "series"
_CACHE_SIZE = 32
_forests: OrderedDict[str, TrainedForest | None] = OrderedDict()


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


def _cache_key(train: pd.DataFrame) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update("\0".join(map(str, train.columns)).encode())
    digest.update(pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _forest(train: pd.DataFrame) -> TrainedForest | None:
    """The forest for these training rows (None when there are too few), trained once."""
    if len(train) < MIN_TRAINING_SAMPLES:
        return None
    key = _cache_key(train)
    if key in _forests:
        _forests.move_to_end(key)
        return _forests[key]
    model = train_forest(train)
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
    train, scored = data.iloc[:n_train], data.iloc[n_train:].reset_index(drop=True)
    model = _forest(train)
    result = run_pipeline(
        scored,
        history=train if n_train else None,
        model=model,
        default_limits=limits,
        safety=safety,
        with_scores=True,
    )
    flagged_ts = np.fromiter((f.ts for f in result.findings), dtype=float, count=len(result.findings))
    flags[n_train:] = np.isin(scored["ts"].to_numpy(dtype=float), flagged_ts)
    if result.row_score is not None:
        score[n_train:] = result.row_score
    return Verdict(flags, score)


def null_verdict(n: int) -> Verdict:
    """The detector that never fires: the floor every table prints."""
    return Verdict(np.zeros(n, dtype=bool), np.zeros(n, dtype=float))


def everything_verdict(n: int, train_rows: int) -> Verdict:
    """The detector that flags every scored row: the other trivial row of every table."""
    flags = np.zeros(n, dtype=bool)
    flags[min(max(train_rows, 0), n) :] = True
    return Verdict(flags, flags.astype(float))
