"""Run the streaming detector over one device's readings: the Python face of `kernel.py`.

`run_device` takes the device's state, readings in time order (one column per metric of the
state, NaN where a reading lacks a metric) and returns per reading whether the device is in
alarm, which metrics are involved, how far past its threshold the strongest score is
(`ratio`, 1.0 = at the threshold), and each metric's expected value and half band width at
that moment. The state is updated in place, so the next call continues where this one ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gridmon.detection.stream.forest import EMPTY, FlatForest
from gridmon.detection.stream.kernel import run_kernel
from gridmon.detection.stream.params import DetectorParams
from gridmon.detection.stream.state import DeviceState

DEFAULT_PARAMS = DetectorParams()


@lru_cache(maxsize=16)
def _param_array(params: DetectorParams) -> np.ndarray:
    return params.as_array()


@dataclass
class SeriesOutput:
    """Per-reading results of one `run_device` call (rows in input order)."""

    flag: np.ndarray
    metric_flag: np.ndarray
    ratio: np.ndarray
    expected: np.ndarray
    halfband: np.ndarray
    trigger: np.ndarray
    features: np.ndarray | None = None


def run_device(
    state: DeviceState,
    ts: np.ndarray,
    values: np.ndarray,
    *,
    params: DetectorParams = DEFAULT_PARAMS,
    forest: FlatForest | None = None,
    start: int = 0,
    features: bool = False,
) -> SeriesOutput:
    """Score `values` (n × len(state.metrics), time order) and advance `state`.

    `start`: alarms may open only from this row on (evaluation protocols give the first rows
    as training); the state learns from every row either way. `features`: also return the
    forest's context features per row (for training a forest).
    """
    ts = np.ascontiguousarray(ts, dtype=np.float64)
    x = np.ascontiguousarray(values, dtype=np.float64).reshape(len(ts), len(state.metrics))
    n, k = x.shape
    if forest is not None and forest.metrics != k:
        raise ValueError(f"forest serves devices of {forest.metrics} metrics, device has {k}")
    fr = (forest if forest is not None else EMPTY).walk()
    out = SeriesOutput(
        flag=np.zeros(n, dtype=np.bool_),
        metric_flag=np.zeros((n, k), dtype=np.bool_),
        ratio=np.zeros(n),
        expected=np.zeros((n, k)),
        halfband=np.zeros((n, k)),
        trigger=np.zeros(n, dtype=np.int64),
        features=np.zeros((n if features else 0, 3 * k)),
    )
    run_kernel(
        ts, x, int(start), _param_array(params),
        state.dev, state.met, state.fam, state.hist, state.cal, state.ring, state.wring,
        state.dhist, state.dcal, state.fhist, state.fcal, state.rel, state.rhist, state.rcal,
        fr.feature, fr.threshold, fr.left, fr.right, fr.weight, fr.roots, fr.depth, fr.norm,
        fr.relation, fr.relation_mean,
        out.flag, out.metric_flag, out.ratio, out.expected, out.halfband, out.trigger, out.features,
    )  # fmt: skip
    if not features:
        out.features = None
    return out
