"""The original design's detector, kept only as the baseline row of `gridmon eval`.

As the original "Power Grid Monitor" described it: an IsolationForest with `contamination=0.1`
on the features voltage, current, temperature, voltage × current, |voltage − 230| and
|current − 4|, trained on the training window and flagging every reading it predicts as an
outlier. Its flags carry the metric `"multivariate"` (the original did not attribute them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from gridmon.detection.base import Finding

DETECTOR = "original_iforest"
CONTAMINATION = 0.1


def _features(frame: pd.DataFrame) -> np.ndarray:
    v = frame["voltage"].to_numpy(dtype=float)
    i = frame["current"].to_numpy(dtype=float)
    t = frame["temperature"].to_numpy(dtype=float)
    x = np.column_stack([v, i, t, v * i, np.abs(v - 230.0), np.abs(i - 4.0)])
    return np.nan_to_num(x)


def train_original(frame: pd.DataFrame, *, random_state: int = 0) -> IsolationForest:
    """Fit the original's forest on `frame`."""
    model = IsolationForest(n_estimators=100, contamination=CONTAMINATION, random_state=random_state)
    return model.fit(_features(frame))


def detect_original(model: IsolationForest, frame: pd.DataFrame) -> list[Finding]:
    """One finding per reading the original's forest calls an outlier."""
    if frame.empty:
        return []
    x = _features(frame)
    outlier = model.predict(x) == -1
    score = -model.score_samples(x)
    rows = np.flatnonzero(outlier)
    devices = frame["device_id"].astype(str).to_numpy()
    ts = frame["ts"].to_numpy(dtype=float)
    return [
        Finding(
            device_id=str(devices[r]),
            ts=float(ts[r]),
            metric="multivariate",
            value=float(score[r]),
            severity="medium",
            detector=DETECTOR,
            score=float(score[r]),
            description="original design: IsolationForest outlier (contamination 0.1)",
        )
        for r in rows
    ]
