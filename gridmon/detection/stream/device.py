"""One device's batch through the detector: from a frame of readings to alarm runs.

`score_batch` is what the scan job, `gridmon eval` and the retrain job share: it aligns the
frame's metric columns with the device's state (adding metrics the state has not seen), runs
the detector, cuts the alarm runs and keeps the episode bookkeeping in the state, so the next
batch knows whether an alarm was open when this one ended.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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


@dataclass
class DeviceRows:
    """One device's readings of a batch as arrays (`values` columns are `columns`)."""

    device_id: str
    ts: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...]


def split_devices(frame: pd.DataFrame) -> Iterator[DeviceRows]:
    """The frame's devices one by one (the frame sorted by device, then ts), as numpy slices:
    no pandas work per device, which dominates the cost of a scan with many small batches."""
    if frame.empty:
        return
    ordered = frame.sort_values(["device_id", "ts"], kind="stable")
    columns = tuple(c for c in ordered.columns if c not in NON_METRICS)
    ids = ordered["device_id"].to_numpy()
    ts = ordered["ts"].to_numpy(dtype=np.float64)
    values = ordered[list(columns)].to_numpy(dtype=np.float64) if columns else np.zeros((len(ordered), 0))
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(ids)])), strict=True):
        block = values[a:b]
        present = np.asarray(~np.isnan(block).all(axis=0), dtype=bool)
        keep = tuple(c for c, p in zip(columns, present.tolist(), strict=True) if p)
        yield DeviceRows(str(ids[a]), ts[a:b], block[:, present], keep)


def score_rows(
    state: DeviceState,
    rows: DeviceRows,
    *,
    params: DetectorParams = DEFAULT_PARAMS,
    forest: FlatForest | None = None,
    start: int = 0,
    features: bool = False,
) -> tuple[DeviceState, BatchResult]:
    """Run one device's readings (time order) through its state; returns the (possibly extended)
    state and the result. The state passed in is updated in place when not extended."""
    state = state.with_metrics(rows.columns)
    index = {c: i for i, c in enumerate(rows.columns)}
    n = len(rows.ts)
    values = np.full((n, len(state.metrics)), np.nan)
    for j, m in enumerate(state.metrics):
        if m in index:
            values[:, j] = rows.values[:, index[m]]
    was_open = not math.isnan(state.dev[E_START])
    out = run_device(state, rows.ts, values, params=params, forest=forest, start=start, features=features)
    runs = alarm_runs(rows.ts, values, state.metrics, out, was_open=was_open) if (was_open or out.flag.any()) else []
    ended_at = float(rows.ts[0]) if was_open and n and not out.flag[0] else None
    if n:
        if out.flag[-1]:
            last = runs[-1]
            state.dev[E_START] = state.dev[E_START] if last.continued else last.start
            state.dev[E_LAST] = last.end
        else:
            state.dev[E_START] = np.nan
    return state, BatchResult(output=out, runs=runs, ended_at=ended_at, metrics=state.metrics)


def score_batch(
    state: DeviceState,
    frame: pd.DataFrame,
    *,
    params: DetectorParams = DEFAULT_PARAMS,
    forest: FlatForest | None = None,
    start: int = 0,
    features: bool = False,
) -> tuple[DeviceState, BatchResult]:
    """`score_rows` for a frame holding one device's readings (sorted by ts)."""
    columns = tuple(c for c in frame.columns if c not in NON_METRICS)
    rows = DeviceRows(
        device_id=str(frame["device_id"].iloc[0]) if "device_id" in frame and len(frame) else "",
        ts=frame["ts"].to_numpy(dtype=np.float64),
        values=frame[list(columns)].to_numpy(dtype=np.float64) if columns else np.zeros((len(frame), 0)),
        columns=columns,
    )
    present = (
        np.asarray(~np.isnan(rows.values).all(axis=0), dtype=bool) if len(frame) else np.zeros(len(columns), dtype=bool)
    )
    rows = DeviceRows(
        rows.device_id, rows.ts, rows.values[:, present], tuple(c for c, p in zip(columns, present, strict=True) if p)
    )
    return score_rows(state, rows, params=params, forest=forest, start=start, features=features)
