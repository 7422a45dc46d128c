"""The shared preparation step of the detectors: readings sorted per device, with baselines.

The statistical detector and the forest's features both need, for every reading, the device's
recent normal level of each metric (`gridmon.detection.baseline`), its previous reading and
whether it is new. Computing that once here keeps the pipeline one pass.

`history` (readings before the frame, e.g. the last hour) only feeds baselines, run lengths and
rates of change; detectors report findings for frame rows only, so each reading is judged once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmon.detection.base import METRICS
from gridmon.detection.baseline import BaselineConfig, device_baseline

# Scale floor relative to the level: keeps z finite on signals that are flat within a bin.
RELATIVE_SCALE_FLOOR = 1e-3
ABSOLUTE_SCALE_FLOOR = 1e-9
NON_METRIC_COLUMNS = frozenset(("device_id", "ts", "ingested_at", "extra"))


@dataclass
class Context:
    """Readings of frame + history, sorted by (device, ts), with per-row baselines.

    Arrays are in sorted order; `codes[i]` indexes `devices`; `frame_pos[i]` is the row's
    position in the frame (-1 for history rows). `values`, `center`, `scale` and `delta` are (n, len(metrics)).
    """

    metrics: list[str]
    devices: np.ndarray
    codes: np.ndarray
    ts: np.ndarray
    is_new: np.ndarray
    frame_pos: np.ndarray
    values: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    delta: np.ndarray
    trend: np.ndarray
    same_prev: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ts.shape[0])

    def device_of(self, row: int | np.integer) -> str:
        return str(self.devices[self.codes[row]])


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Core metrics present, then any further numeric columns (extra metrics), in frame order."""
    core = [m for m in METRICS if m in frame.columns]
    extras = [
        str(c)
        for c in frame.columns
        if c not in METRICS and c not in NON_METRIC_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])
    ]
    return core + extras


def _empty(metrics: list[str]) -> Context:
    m = len(metrics)
    return Context(
        metrics=metrics,
        devices=np.empty(0, dtype=object),
        codes=np.empty(0, dtype=np.int64),
        ts=np.empty(0),
        is_new=np.empty(0, dtype=bool),
        frame_pos=np.empty(0, dtype=np.int64),
        values=np.empty((0, m)),
        center=np.empty((0, m)),
        scale=np.empty((0, m)),
        delta=np.empty((0, m)),
        trend=np.empty((0, m)),
        same_prev=np.empty(0, dtype=bool),
    )


def _combine(frame: pd.DataFrame, history: pd.DataFrame | None, metrics: list[str]) -> pd.DataFrame:
    cols = ["device_id", "ts", *metrics]
    parts = []
    if history is not None and not history.empty:
        hist = history[history["device_id"].isin(frame["device_id"].unique())]
        hist = hist.reindex(columns=cols)
        parts.append(hist.assign(_pos=-1))
    parts.append(frame[cols].assign(_pos=np.arange(len(frame), dtype=np.int64)))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def build_context(
    frame: pd.DataFrame, history: pd.DataFrame | None = None, config: BaselineConfig | None = None
) -> Context:
    """Sort frame + history and compute every row's baseline (centre, scale) and change."""
    config = config or BaselineConfig()
    metrics = metric_columns(frame)
    if frame.empty or not metrics:
        return _empty(metrics)
    work = _combine(frame, history, metrics)
    ids = work["device_id"]
    if not (pd.api.types.is_string_dtype(ids) or ids.dtype == object):
        ids = ids.astype(str)
    codes, uniques = pd.factorize(ids, sort=False)
    codes = codes.astype(np.int64)
    ts = work["ts"].to_numpy(dtype=float)
    values = work[metrics].to_numpy(dtype=float)
    frame_pos = work["_pos"].to_numpy(dtype=np.int64)
    if not _is_sorted(codes, ts):
        order = _sort_order(codes, ts)
        codes, ts, values, frame_pos = codes[order], ts[order], values[order], frame_pos[order]

    same_prev = np.zeros(len(ts), dtype=bool)
    same_prev[1:] = codes[1:] == codes[:-1]
    delta = np.zeros_like(values)
    delta[1:] = values[1:] - values[:-1]
    delta[~same_prev] = 0.0
    delta[~np.isfinite(delta)] = 0.0

    center, scale, trend = device_baseline(codes, ts, values, len(uniques), config)
    floor = _scale_floor(values, same_prev)
    floor = np.maximum(floor, RELATIVE_SCALE_FLOOR * np.abs(np.nan_to_num(center)))
    scale = np.maximum(scale, floor)
    return Context(
        metrics=metrics,
        devices=np.asarray(uniques, dtype=object),
        codes=codes,
        ts=ts,
        is_new=frame_pos >= 0,
        frame_pos=frame_pos,
        values=values,
        center=center,
        scale=scale,
        delta=delta,
        trend=trend,
        same_prev=same_prev,
    )


def _is_sorted(codes: np.ndarray, ts: np.ndarray) -> bool:
    """Already ordered by (device code, ts)? Frames from the table or the simulator usually are."""
    if codes.size < 2:
        return True
    dc = np.diff(codes)
    return bool(np.all(dc >= 0) and np.all((np.diff(ts) >= 0) | (dc != 0)))


def _sort_order(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Order by (device, ts). History and frame usually arrive each sorted and in time order per
    device: then a stable sort on the device code alone (a linear radix sort for small ints) is
    enough. Otherwise — late readings — a full lexsort."""
    small = codes.astype(np.int16) if codes.max() < np.iinfo(np.int16).max else codes
    order = np.argsort(small, kind="stable")
    if _is_sorted(codes[order], ts[order]):
        return order
    return np.lexsort((ts, codes))


def _scale_floor(values: np.ndarray, same_prev: np.ndarray) -> np.ndarray:
    """Per row: half the smallest non-zero step of the device's metric so far (its quantisation).

    A signal that is constant within every bin (standard deviation 0) would otherwise give an
    infinite z for the first one-step change. "So far" (this row and the device's earlier ones)
    keeps the verdict causal: a finer step later in the data cannot change an earlier verdict.
    """
    steps = np.abs(np.diff(values, axis=0, prepend=np.nan))
    steps[~same_prev] = np.inf
    steps[~(steps > 0)] = np.inf
    smallest = np.empty_like(steps)
    bounds = np.append(np.flatnonzero(~same_prev), len(steps))  # rows are sorted by device
    for a, b in itertools.pairwise(bounds):
        np.minimum.accumulate(steps[a:b], axis=0, out=smallest[a:b])
    floor = np.where(np.isfinite(smallest), 0.5 * smallest, ABSOLUTE_SCALE_FLOOR)
    return np.maximum(floor, ABSOLUTE_SCALE_FLOOR)
