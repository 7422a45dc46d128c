"""Training data for the forests: replay devices' recent readings through fresh detector states.

The forest learns how the metrics of a group of devices (one kind and metric set) move together
in normal operation, from their context features (residual z, short shift, spread per metric).
The rows come from replaying each device's recent readings (`jobs.retrain`: its last hours, at
least its last readings) through a fresh state with `features=True`, so they are exactly what the
live detector computes. Rows are kept only once the device's scales have settled (after
`SETTLE_READINGS`) and only where no alarm was open: a forest that learns a fault as normal
stops seeing it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from gridmon.detection.stream.device import metric_columns, score_batch
from gridmon.detection.stream.forest import (
    MIN_METRICS,
    FlatForest,
    ForestSet,
    InsufficientData,
    group_key,
    train_flat_forest,
)
from gridmon.detection.stream.params import DetectorParams
from gridmon.detection.stream.run import DEFAULT_PARAMS
from gridmon.detection.stream.state import DeviceState

SETTLE_READINGS = 200


def normal_feature_rows(frame: pd.DataFrame, *, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Feature rows of one device's readings (sorted by ts) where the replayed detector saw no alarm."""
    metrics = metric_columns(frame)
    state, result = score_batch(DeviceState.new(metrics), frame, params=params, features=True)
    feats = result.output.features
    if feats is None or feats.shape[0] <= SETTLE_READINGS:
        return np.zeros((0, 3 * len(state.metrics)))
    keep = ~result.output.flag & frame[list(state.metrics)].notna().all(axis=1).to_numpy()
    keep[:SETTLE_READINGS] = False  # (a reading without every metric says nothing of their relation)
    return feats[keep]


def train_groups(
    frame: pd.DataFrame, kinds: dict[str, str | None], *, params: DetectorParams = DEFAULT_PARAMS, seed: int = 0
) -> tuple[ForestSet, dict[str, int]]:
    """One forest per group of the devices in `frame`; returns the set and rows used per group
    (groups with too few rows are left out). Raises InsufficientData when no group trains."""
    pooled: dict[str, list[np.ndarray]] = defaultdict(list)
    for device_id, readings in frame.groupby("device_id", sort=True):
        device = readings.dropna(axis=1, how="all")
        key = group_key(kinds.get(str(device_id)), metric_columns(device))
        pooled[key].append(normal_feature_rows(device, params=params))
    forests: dict[str, FlatForest] = {}
    used: dict[str, int] = {}
    reasons = []
    for key, parts in sorted(pooled.items()):
        if not parts or parts[0].shape[1] < 3 * MIN_METRICS:
            reasons.append(f"{key}: a forest needs at least {MIN_METRICS} metrics")
            continue
        rows = np.vstack(parts)
        try:
            forests[key] = train_flat_forest(rows, random_state=seed)
        except InsufficientData as exc:
            reasons.append(f"{key}: {exc}")
            continue
        used[key] = int(rows.shape[0])
    if not forests:
        raise InsufficientData("; ".join(reasons) or "no readings")
    return ForestSet(forests=forests, params=params.to_dict()), used
