"""Retraining: recent readings → one IsolationForest per device group → a new active model version.

Per profile kind, up to `DEVICES_PER_KIND` recently seen devices have their last
`retrain_window_h` hours, and at least their last `MIN_READINGS` readings (a device reporting
hourly has 24 readings in a day), at most `retrain_max_samples` readings in all, replayed through
fresh detector states (`gridmon.detection.stream.training`); the normal rows train one forest per
group (kind + metric set). With too little data the previous version stays active and the
result says why; nothing is written. The `workers.training.retrain` task is a thin wrapper
around `retrain`; the report is `RetrainResult`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gridmon.config import get_settings
from gridmon.detection.stream.forest import ForestSet, InsufficientData
from gridmon.detection.stream.training import SETTLE_READINGS, train_groups
from gridmon.jobs.models import write_artifact
from gridmon.jobs.scan import detector_params
from gridmon.storage import db, devices
from gridmon.storage.frames import devices_between
from gridmon.storage.model_versions import VersionRecord, activate_model, active_version, register_model

log = logging.getLogger(__name__)

TRAINED = "trained"
SKIPPED = "skipped"
DEVICES_PER_KIND = 20
# Readings replayed per device however long they span: the replay settles the scales on the first
# `SETTLE_READINGS` and keeps normal rows after them, as many again (the evaluations' 400
# training rows); a forest needs `MIN_ROWS` of them per group. Windows are counted in readings,
# as the detector's are: a 24-hour window alone would give a device reporting hourly no row at all.
MIN_READINGS = 2 * SETTLE_READINGS


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
    groups: dict[str, int] = field(default_factory=dict)
    train_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(
    forests: ForestSet, used: dict[str, int], path: Path, window: tuple[float, float], note: str | None
) -> VersionRecord:
    return VersionRecord(
        artifact_path=path,
        window=window,
        n_samples=sum(used.values()),
        features=sorted(forests.forests),
        threshold=0.0,  # thresholds are calibrated per device by the detector, not stored here
        params=forests.params,
        metrics={"rows_per_group": used},
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
        chosen = devices.recently_seen(conn, start, DEVICES_PER_KIND)
        frame = devices_between(
            conn, [d for d, _ in chosen], start, end, settings.retrain_max_samples, at_least=MIN_READINGS
        )
    started = time.monotonic()
    try:
        forests, used = train_groups(frame, dict(chosen), params=detector_params())
    except InsufficientData as exc:
        log.warning("retrain skipped, previous model stays active active=%s reason=%s", previous and previous[0], exc)
        return RetrainResult(
            status=SKIPPED,
            active_model_id=previous[0] if previous else None,
            n_samples=len(frame),
            reason=str(exc),
            window_start=start.isoformat(),
            window_end=end.isoformat(),
        )
    seconds = time.monotonic() - started
    path = write_artifact(forests, settings.models_path)
    with db.connection() as conn:
        model_id = register_model(conn, _record(forests, used, path, (start.timestamp(), end.timestamp()), note))
        activate_model(conn, model_id)
    log.info(
        "retrained model id=%s groups=%s rows=%d seconds=%.1f previous=%s",
        model_id,
        sorted(used),
        sum(used.values()),
        seconds,
        previous and previous[0],
    )
    return RetrainResult(
        status=TRAINED,
        active_model_id=model_id,
        model_id=model_id,
        n_samples=sum(used.values()),
        groups=used,
        train_seconds=round(seconds, 3),
        window_start=start.isoformat(),
        window_end=end.isoformat(),
    )
