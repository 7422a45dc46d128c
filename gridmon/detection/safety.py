"""Safety-limit check: is a value outside the safe operating range, and how far.

Runs in the ingest path on every batch, so it is one vectorised pass per metric with no sorting
and no per-row Python except for the (rare) readings that are actually out of range.

Severity is by how far past the limit the value is, relative to the width of the safe band
(voltage 200–250 V: width 50 V):

| excess / band width | severity | voltage example (upper limit 250 V) |
| ------------------- | -------- | ----------------------------------- |
| ≤ 5 %               | low      | up to 252.5 V                       |
| ≤ 10 %              | medium   | up to 255 V                         |
| ≤ 20 %              | high     | up to 260 V                         |
| > 20 %              | critical | above 260 V                         |

The finding's score is that relative excess. Non-finite values are skipped (they never reach the
table: validation rejects them) rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from gridmon.detection.base import METRICS, SEVERITIES, DetectionResult, Finding
from gridmon.detection.limits import SafetyLimits

DETECTOR = "safety"
# Upper bounds of relative excess for low, medium, high; anything beyond is critical.
SEVERITY_BANDS = (0.05, 0.10, 0.20)
_SEVERITY_NAMES = np.array(SEVERITIES)
_UNITS = {"voltage": "V", "current": "A", "temperature": "°C"}


def _bounds(
    devices: pd.Series, metric: str, limits: Mapping[str, SafetyLimits] | None, default: SafetyLimits
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Per-row (low, high) arrays when devices have overrides, scalars otherwise."""
    lo_default, hi_default = getattr(default, metric)
    if not limits:
        return lo_default, hi_default
    codes, uniques = pd.factorize(devices)
    per_device = [getattr(limits.get(str(dev), default), metric) for dev in uniques]
    lows = np.array([p[0] for p in per_device], dtype=float)
    highs = np.array([p[1] for p in per_device], dtype=float)
    return lows[codes], highs[codes]


def severity_for_excess(relative_excess: np.ndarray) -> np.ndarray:
    """Map relative excess (> 0) to severity names by `SEVERITY_BANDS`."""
    return _SEVERITY_NAMES[np.searchsorted(np.asarray(SEVERITY_BANDS), relative_excess, side="left")]


def check_safety(
    frame: pd.DataFrame,
    limits: Mapping[str, SafetyLimits] | None = None,
    default: SafetyLimits | None = None,
) -> DetectionResult:
    """One finding per (reading, metric) outside its device's safe range.

    `limits` maps device_id → SafetyLimits for devices with a profile; the others use `default`
    (the global limits when None).
    """
    default = default if default is not None else SafetyLimits()
    result = DetectionResult(detector=DETECTOR, scored=len(frame))
    if frame.empty:
        return result
    devices = frame["device_id"]
    ts = frame["ts"].to_numpy(dtype=float)
    for metric in METRICS:
        if metric not in frame.columns:
            continue
        values = frame[metric].to_numpy(dtype=float)
        lo, hi = _bounds(devices, metric, limits, default)
        width = np.maximum(np.asarray(hi, dtype=float) - np.asarray(lo, dtype=float), 1e-9)
        with np.errstate(invalid="ignore"):
            excess = np.maximum(lo - values, values - hi)
        excess = np.where(np.isfinite(excess), excess, 0.0)
        rows = np.flatnonzero(excess > 0)
        if rows.size == 0:
            continue
        relative = (excess / width)[rows] if np.ndim(width) else excess[rows] / float(width)
        severities = severity_for_excess(relative)
        lo_rows = np.broadcast_to(np.asarray(lo, dtype=float), values.shape)[rows]
        hi_rows = np.broadcast_to(np.asarray(hi, dtype=float), values.shape)[rows]
        unit = _UNITS[metric]
        dev_rows = devices.to_numpy()[rows]
        for i, row in enumerate(rows):
            value = float(values[row])
            if value > hi_rows[i]:
                text = f"{metric} {value:.2f} {unit} above the safe limit {hi_rows[i]:.2f} {unit}"
            else:
                text = f"{metric} {value:.2f} {unit} below the safe limit {lo_rows[i]:.2f} {unit}"
            result.findings.append(
                Finding(
                    device_id=str(dev_rows[i]),
                    ts=float(ts[row]),
                    metric=metric,
                    value=value,
                    severity=str(severities[i]),
                    detector=DETECTOR,
                    score=float(relative[i]),
                    description=text,
                )
            )
    return result
