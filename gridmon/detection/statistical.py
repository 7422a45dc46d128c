"""Statistical detector: robust z-scores against each device's rolling baseline, and flat-lines.

Per device and metric, z = (value − centre) / scale with the centre and scale of
`gridmon.detection.context` (medians and MADs of the previous accepted minutes), so slow daily
load cycles are followed and faults are not.

A reading is reported when |z| > `z_threshold` (the original design's 3-sigma rule) *and* the
deviation is confirmed: either it persists for `min_run` consecutive readings, or it is beyond
`z_instant` on its own. Without that, Gaussian noise alone crosses 3 sigma on 0.27 % of
readings — over a hundred alerts per device and day at one reading every 2 s.

Severity by |z| as a multiple of the threshold: ≤ 1.5× low, ≤ 2× medium, ≤ 3× high, beyond
critical (with the default 3: 4.5, 6, 9 sigma).

Flat-line (stuck sensor): `flat_run` or more identical consecutive values of a metric that
normally moves. A metric is judged to move when, over the device's readings at hand up to this
one (history + frame), identical neighbours in runs that ended short are rare (≤ 5 %) and long
runs cover at most half of them — quantised or genuinely constant channels would otherwise
alarm all day. A run counts as long from the reading where it reaches `flat_run`, and as short
once it ended before that: only what is known at a reading decides its verdict. Pass an hour or
more of history so that a sensor stuck for the whole frame is still recognised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmon.detection.base import SEVERITIES, DetectionResult, Finding
from gridmon.detection.baseline import BaselineConfig
from gridmon.detection.context import Context, build_context
from gridmon.detection.runs import confirm, run_position

DETECTOR = "statistical"
FLAT_DETECTOR = "statistical"
SEVERITY_FACTORS = (1.5, 2.0, 3.0)
MAX_SHORT_REPEAT_FRACTION = 0.05
MAX_LONG_RUN_FRACTION = 0.5
_SEVERITIES = np.array(SEVERITIES)
_UNITS = {"voltage": " V", "current": " A", "temperature": " °C"}


@dataclass(frozen=True)
class StatisticalConfig:
    """Thresholds of the statistical detector (see module docstring)."""

    z_threshold: float = 3.0
    z_instant: float | None = None  # default: twice z_threshold
    min_run: int = 3
    flat_run: int = 10

    @property
    def instant(self) -> float:
        return self.z_instant if self.z_instant is not None else 2.0 * self.z_threshold


@dataclass
class StatisticalScores:
    """Per-row, per-metric outcome in context order."""

    z: np.ndarray
    confirmed: np.ndarray
    flat: np.ndarray
    flat_len: np.ndarray


def score_context(ctx: Context, config: StatisticalConfig) -> StatisticalScores:
    """Robust z, confirmed deviations and flat-lines for every row of the context."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (ctx.values - ctx.center) / ctx.scale
    absz = np.nan_to_num(np.abs(z), nan=0.0, posinf=0.0)
    flagged = absz > config.z_threshold
    confirmed = confirm(flagged, absz > config.instant, ctx.same_prev, config.min_run)
    flat, flat_len = _flat_lines(ctx, config.flat_run)
    return StatisticalScores(z=z, confirmed=confirmed, flat=flat, flat_len=flat_len)


def _flat_lines(ctx: Context, flat_run: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are at least the `flat_run`-th identical value in a row, on metrics that move."""
    values = ctx.values
    equal = np.zeros(values.shape, dtype=bool)
    if ctx.n > 1:
        equal[1:] = (values[1:] == values[:-1]) & ctx.same_prev[1:, None]
    pos = run_position(equal, ctx.same_prev)
    length = pos + 2  # a run of k equal differences is k + 1 identical readings
    long_now = equal & (length >= flat_run)
    moves = _moves_so_far(ctx, equal, pos, max(flat_run - 1, 1))
    flat = long_now & moves
    return flat, np.where(flat, length, 0)


def _moves_so_far(ctx: Context, equal: np.ndarray, pos: np.ndarray, long_pairs: int) -> np.ndarray:
    """Per row and metric: does the metric move, judged on the device's pairs up to this row?

    A run of equal neighbours counts as long (all its pairs) from the row where it reaches
    `long_pairs` pairs; a run that ended shorter counts as short repeats from the row after its
    end (only then is it known to be short). A run still short and still going is not counted.
    """
    n = ctx.n
    long_add = np.where(pos == long_pairs - 1, float(long_pairs), 0.0) + (pos >= long_pairs)
    short_add = np.zeros(equal.shape)
    if n > 1:
        ended = equal[:-1] & ~(equal[1:] & ctx.same_prev[1:, None]) & ctx.same_prev[1:, None]
        final = pos[:-1] + 1
        short_add[1:] = np.where(ended & (final < long_pairs), final, 0.0)
    # Rows are sorted by device: a running sum per device is the running sum minus its value
    # just before the device's first row.
    first = np.flatnonzero(~ctx.same_prev)
    block = np.cumsum(~ctx.same_prev) - 1
    long_cum = _running_per_block(long_add, first, block)
    short_cum = _running_per_block(short_add, first, block)
    pairs = np.maximum(np.arange(n) - first[block], 1).astype(np.float64)[:, None]
    return (short_cum / pairs <= MAX_SHORT_REPEAT_FRACTION) & (long_cum / pairs <= MAX_LONG_RUN_FRACTION)


def _running_per_block(values: np.ndarray, first: np.ndarray, block: np.ndarray) -> np.ndarray:
    total = np.cumsum(values, axis=0)
    before = np.vstack([np.zeros((1, values.shape[1])), total])[first]
    return total - before[block]


def severity_for_z(absz: np.ndarray, z_threshold: float) -> np.ndarray:
    bands = np.asarray(SEVERITY_FACTORS) * z_threshold
    return _SEVERITIES[np.searchsorted(bands, absz, side="left")]


def findings_from_scores(ctx: Context, scores: StatisticalScores, config: StatisticalConfig) -> list[Finding]:
    """Findings for frame rows only (history rows were judged when they were new)."""
    out: list[Finding] = []
    report_z = scores.confirmed & ctx.is_new[:, None]
    report_flat = scores.flat & ~scores.confirmed & ctx.is_new[:, None]
    rows, cols = np.nonzero(report_z)
    if rows.size:
        absz = np.abs(scores.z[rows, cols])
        severities = severity_for_z(absz, config.z_threshold)
        for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
            metric = ctx.metrics[c]
            unit = _UNITS.get(metric, "")
            value = float(ctx.values[r, c])
            side = "above" if scores.z[r, c] > 0 else "below"
            out.append(
                Finding(
                    device_id=ctx.device_of(r),
                    ts=float(ctx.ts[r]),
                    metric=metric,
                    value=value,
                    severity=str(severities[i]),
                    detector=DETECTOR,
                    score=float(absz[i]),
                    description=(
                        f"{metric} {value:.4g}{unit} is {absz[i]:.1f} sigma {side} its baseline "
                        f"{ctx.center[r, c]:.4g}{unit} (sigma {ctx.scale[r, c]:.3g})"
                    ),
                )
            )
    rows, cols = np.nonzero(report_flat)
    for r, c in zip(rows, cols, strict=True):
        metric = ctx.metrics[c]
        value = float(ctx.values[r, c])
        count = int(scores.flat_len[r, c])
        out.append(
            Finding(
                device_id=ctx.device_of(r),
                ts=float(ctx.ts[r]),
                metric=metric,
                value=value,
                severity="medium",
                detector=FLAT_DETECTOR,
                score=float(count),
                description=f"{metric} stuck at {value:.4g}{_UNITS.get(metric, '')} for {count} readings (flat-line)",
            )
        )
    return out


def detect_statistical(
    frame: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    z_threshold: float = 3.0,
    z_instant: float | None = None,
    min_run: int = 3,
    flat_run: int = 10,
    baseline: BaselineConfig | None = None,
) -> DetectionResult:
    """Robust z-score and flat-line findings for the frame's readings (see module docstring)."""
    config = StatisticalConfig(z_threshold=z_threshold, z_instant=z_instant, min_run=min_run, flat_run=flat_run)
    result = DetectionResult(detector=DETECTOR, scored=len(frame))
    if frame.empty:
        return result
    ctx = build_context(frame, history, baseline)
    if ctx.n == 0:
        return result
    scores = score_context(ctx, config)
    result.findings = findings_from_scores(ctx, scores, config)
    return result
