"""One device's batch through the detector: from a frame of readings to alarm runs.

`score_batch` is what the scan job, `gridmon eval` and the retrain job share: it aligns the
frame's metric columns with the device's state (adding metrics the state has not seen), runs
the detector, cuts the alarm runs and keeps the episode bookkeeping in the state, so the next
batch knows whether an alarm was open when this one ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmon.detection.stream.episodes import AlarmRun, alarm_runs
from gridmon.detection.stream.forest import FlatForest
from gridmon.detection.stream.params import DetectorParams
from gridmon.detection.stream.run import DEFAULT_PARAMS, SeriesOutput, run_device
from gridmon.detection.stream.state import E_LAST, E_START, DeviceState

NON_METRICS = ("device_id", "ts")


@dataclass
class BatchResult:
    """What one device's batch gave: per-reading output, alarm runs, and whether an alarm that was
    open before the batch ended at its first reading (`ended_at`)."""

    output: SeriesOutput
    runs: list[AlarmRun]
    ended_at: float | None
    metrics: tuple[str, ...]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a readings frame that hold at least one value."""
    return [c for c in frame.columns if c not in NON_METRICS and frame[c].notna().any()]


def score_batch(
    state: DeviceState,
    frame: pd.DataFrame,
    *,
    params: DetectorParams = DEFAULT_PARAMS,
    forest: FlatForest | None = None,
    start: int = 0,
    features: bool = False,
) -> tuple[DeviceState, BatchResult]:
    """Run one device's readings (sorted by ts) through its state; returns the (possibly extended)
    state and the result. The state object passed in is updated in place when not extended."""
    state = state.with_metrics(metric_columns(frame))
    ts = frame["ts"].to_numpy(dtype=np.float64)
    values = (
        np.column_stack(
            [frame[m].to_numpy(dtype=np.float64) if m in frame else np.full(len(frame), np.nan) for m in state.metrics]
        )
        if len(state.metrics)
        else np.zeros((len(frame), 0))
    )
    was_open = not math.isnan(state.dev[E_START])
    out = run_device(state, ts, values, params=params, forest=forest, start=start, features=features)
    runs = alarm_runs(ts, values, state.metrics, out, was_open=was_open)
    ended_at = float(ts[0]) if was_open and len(ts) and not out.flag[0] else None
    if len(ts):
        if out.flag[-1]:
            last = runs[-1]
            state.dev[E_START] = state.dev[E_START] if last.continued else last.start
            state.dev[E_LAST] = last.end
        else:
            state.dev[E_START] = np.nan
    return state, BatchResult(output=out, runs=runs, ended_at=ended_at, metrics=state.metrics)
