"""Alarm runs: a device's consecutive readings in alarm, reported as one alert.

One fault seen on several metrics of a device is one alert that lists the metrics; it stays
open as long as the detector's alarm does (a stuck sensor stays in alarm while it is stuck) and
it ends when the detector clears the alarm. `alarm_runs` cuts one `run_device` output into such
runs; a run that was open before the batch is marked `continued`, one still open after the
batch's last reading is not `closed`.

A metric is listed when it was flagged for at least a tenth of the run.

Severity reflects how far outside and for how long: the peak `ratio` (score / threshold) sets the
base step (below 2× low, 4× medium, 8× high, beyond critical), and a condition that lasts
30 minutes, then 6 hours, goes one step up each time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gridmon.detection.stream.run import SeriesOutput
from gridmon.domain.severity import SEVERITIES

RATIO_STEPS = (2.0, 4.0, 8.0)
DURATION_STEPS_S = (1800.0, 6 * 3600.0)


def severity_for(ratio: float, duration_s: float) -> str:
    """The severity of an alarm that peaked at `ratio` and has lasted `duration_s`."""
    base = sum(1 for step in RATIO_STEPS if ratio >= step)
    base += sum(1 for step in DURATION_STEPS_S if duration_s >= step)
    return SEVERITIES[min(base, len(SEVERITIES) - 1)]


@dataclass
class AlarmRun:
    """One alarm of one device within a batch of readings."""

    start: float
    end: float
    readings: int
    continued: bool
    closed: bool
    metrics: tuple[str, ...]
    peak_ratio: float
    peak_ts: float
    peak_metric: str
    peak_value: float
    expected: float | None
    halfband: float | None
    per_metric_readings: dict[str, int] = field(default_factory=dict)

    def severity(self, opened_at: float | None = None) -> str:
        """Severity at the run's end, counting duration from `opened_at` (default: the run's start)."""
        return severity_for(self.peak_ratio, self.end - (self.start if opened_at is None else opened_at))

    @property
    def band(self) -> tuple[float, float] | None:
        if self.expected is None or self.halfband is None:
            return None
        return self.expected - self.halfband, self.expected + self.halfband

    def description(self, units: dict[str, str] | None = None) -> str:
        return describe(self.peak_metric, self.peak_value, self.band, self.peak_ratio, self.metrics, units)


def describe(
    metric: str,
    value: float,
    band: tuple[float, float] | None,
    ratio: float,
    metrics: tuple[str, ...] | list[str],
    units: dict[str, str] | None = None,
) -> str:
    """'temperature 71 °C, expected 52–58 °C (4.2× threshold); also current'."""
    unit = (units or {}).get(metric, "")
    unit = f" {unit}" if unit else ""
    text = f"{metric} {value:.4g}{unit}"
    if band is not None:
        text += f", expected {band[0]:.4g}–{band[1]:.4g}{unit}"
    text += f" ({ratio:.1f}× threshold)"
    others = [m for m in metrics if m != metric]
    if others:
        text += "; also " + ", ".join(others)
    return text


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def alarm_runs(
    ts: np.ndarray, values: np.ndarray, metrics: tuple[str, ...], out: SeriesOutput, *, was_open: bool
) -> list[AlarmRun]:
    """Cut `out.flag` into runs (see the module docstring)."""
    flag = out.flag
    n = flag.shape[0]
    if n == 0 or not flag.any():
        return []
    edges = np.diff(np.concatenate(([0], flag.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    runs = []
    for a, b in zip(starts, ends, strict=True):
        sl = slice(int(a), int(b) + 1)
        mflag = out.metric_flag[sl]
        # A metric is part of the fault when it was flagged for at least a tenth of the run
        # (a reading or two of another metric at the edge of a long fault is not).
        involved = mflag.sum(axis=0) >= max(1.0, math.ceil(0.1 * (b - a + 1)))
        peak = int(a) + int(np.argmax(out.ratio[sl]))
        # The metric the alert is about at its peak: the involved one furthest outside its band.
        dev = np.abs(values[peak] - out.expected[peak]) / np.where(out.halfband[peak] > 0, out.halfband[peak], np.nan)
        dev = np.where(involved & np.isfinite(dev), dev, -1.0)
        j = int(np.argmax(dev)) if dev.max() >= 0 else int(np.argmax(involved))
        names = tuple(m for m, hit in zip(metrics, involved, strict=True) if hit) or (metrics[j],)
        runs.append(
            AlarmRun(
                start=float(ts[a]),
                end=float(ts[b]),
                readings=int(b - a + 1),
                continued=bool(was_open and a == 0),
                closed=bool(b < n - 1),
                metrics=names,
                peak_ratio=float(out.ratio[peak]),
                peak_ts=float(ts[peak]),
                peak_metric=metrics[j],
                peak_value=float(values[peak, j]),
                expected=_finite(out.expected[peak, j]),
                halfband=_finite(out.halfband[peak, j]),
                per_metric_readings={m: int(c) for m, c in zip(metrics, mflag.sum(axis=0), strict=True) if c},
            )
        )
    return runs
