"""Retraining: the last `retrain_window_h` hours of readings → a new active model version.

Readings inside alert episodes are left out of the training data (a forest that learns an
hour of overheating as normal stops seeing it). With too little data the previous version
stays active and the result says why; nothing is written. The `workers.training.retrain` task
is a thin wrapper around `retrain`; the report is `RetrainResult`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridmon.config import get_settings
from gridmon.detection.forest import InsufficientData, TrainedForest, train_forest
from gridmon.jobs.models import write_artifact
from gridmon.storage import alerts, db
from gridmon.storage.frames import readings_between
from gridmon.storage.model_versions import VersionRecord, activate_model, active_version, register_model

log = logging.getLogger(__name__)

TRAINED = "trained"
SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class RetrainResult:
    """What a retrain did; `status` is `trained` or `skipped` (with `reason`)."""

    status: str
    active_model_id: int | None
    n_samples: int
    window_start: str
    window_end: str
    model_id: int | None = None
    reason: str | None = None
    threshold: float | None = None
    excluded_alert_readings: int = 0
    train_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _without_alert_episodes(frame: pd.DataFrame, spans: list[tuple[str, float, float]]) -> pd.DataFrame:
    """Drop readings that fall inside an alert's span on the same device."""
    if not spans or frame.empty:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    devices = frame["device_id"].to_numpy()
    ts = frame["ts"].to_numpy(dtype=float)
    for device_id, lo, hi in spans:
        keep &= ~((devices == device_id) & (ts >= lo) & (ts <= hi))
    return frame.loc[keep].reset_index(drop=True)


def _record(model: TrainedForest, path: Path, window: tuple[float, float], note: str | None) -> VersionRecord:
    return VersionRecord(
        artifact_path=path,
        window=window,
        n_samples=int(model.metrics.get("n_samples", 0)),
        features=list(model.feature_names),
        threshold=float(model.threshold),
        params=model.params,
        metrics=model.metrics,
        note=note,
    )


def retrain(window_hours: float | None = None, *, now: float | None = None, note: str | None = None) -> RetrainResult:
    """Train on the window ending now; register and activate the new version."""
    settings = get_settings()
    hours = window_hours if window_hours is not None else settings.retrain_window_h
    end = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    start = end - timedelta(hours=hours)
    with db.connection() as conn:
        previous = active_version(conn)
        frame = readings_between(conn, start, end, settings.retrain_max_samples)
        clean = _without_alert_episodes(frame, alerts.episode_spans(conn, start, end))
    excluded = len(frame) - len(clean)
    started = time.monotonic()
    try:
        model = train_forest(clean, target_false_alarm_rate=settings.target_false_alarm_rate, random_state=0)
    except InsufficientData as exc:
        log.warning("retrain skipped, previous model stays active active=%s reason=%s", previous and previous[0], exc)
        return RetrainResult(
            status=SKIPPED,
            active_model_id=previous[0] if previous else None,
            n_samples=len(clean),
            reason=str(exc),
            window_start=start.isoformat(),
            window_end=end.isoformat(),
            excluded_alert_readings=excluded,
        )
    seconds = time.monotonic() - started
    path = write_artifact(model, settings.models_path)
    window = (model.window[0] or start.timestamp(), model.window[1] or end.timestamp())
    with db.connection() as conn:
        model_id = register_model(conn, _record(model, path, window, note))
        activate_model(conn, model_id)
    log.info(
        "retrained model id=%s samples=%d threshold=%.4f seconds=%.1f previous=%s",
        model_id,
        len(clean),
        model.threshold,
        seconds,
        previous and previous[0],
    )
    return RetrainResult(
        status=TRAINED,
        active_model_id=model_id,
        model_id=model_id,
        n_samples=int(model.metrics.get("n_samples", len(clean))),
        threshold=float(model.threshold),
        train_seconds=round(seconds, 3),
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        excluded_alert_readings=excluded,
    )
