"""One maintenance run: read each device's recent history, predict, store, notify.

Called by the Celery task `workers.maintenance.predict` (periodically by beat, on demand by the
API). Each device is committed on its own, so one bad device does not void the others' results;
notifications are delivered after the predictions are committed (see `notify`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
import redis

from gridmon import db
from gridmon.maintenance import storage
from gridmon.maintenance.buckets import combined_variance
from gridmon.maintenance.factors import fleet_median
from gridmon.maintenance.model import DeviceProfile, MaintenanceConfig, MaintenancePrediction
from gridmon.maintenance.notify import drain_outbox, message, redis_client, should_notify
from gridmon.maintenance.predict import CurrentReading, predict_device

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunSummary:
    devices: int
    high_risk: int
    queued: int
    sent: int
    pending: int
    redis_error: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        return asdict(self)


def _recent_voltage_var(buckets: pd.DataFrame, recent_start: float) -> float | None:
    recent = buckets[buckets["t_mean"] > recent_start]
    if recent.empty:
        return None
    return combined_variance(
        recent["n"].to_numpy(dtype=float),
        recent["volt_mean"].to_numpy(dtype=float),
        recent["volt_var"].to_numpy(dtype=float),
    )


def _store(conn: psycopg.Connection, prediction: MaintenancePrediction, config: MaintenanceConfig) -> bool:
    """Insert the prediction and, on a change into a notified level, its notification. True if queued."""
    storage.lock_device(conn, prediction.device_id)
    previous = storage.previous_level(conn, prediction.device_id)
    prediction_id = storage.insert_prediction(conn, prediction)
    if not should_notify(previous, prediction.risk_level, config.notify_levels):
        return False
    storage.enqueue_notification(
        conn, prediction.device_id, prediction_id, message(prediction, previous, prediction_id)
    )
    return True


def run_predictions(
    device_id: str | None = None,
    *,
    now: datetime | None = None,
    config: MaintenanceConfig | None = None,
    client: redis.Redis | None = None,
) -> RunSummary:
    """Predict for one device or for every device seen within the lookback window."""
    config = config or MaintenanceConfig()
    computed_at = now or datetime.now(UTC)
    as_of = computed_at.timestamp()
    start = as_of - config.lookback_s
    recent_start = as_of - config.recent_s
    predictions: list[MaintenancePrediction] = []
    queued = 0
    with db.connection() as conn:
        profiles = storage.load_profiles(conn, device_id=device_id, seen_since=start)
        inputs: dict[str, tuple[DeviceProfile, pd.DataFrame, CurrentReading | None]] = {}
        for profile in profiles:
            buckets = storage.load_buckets(conn, profile, start=start, end=as_of, config=config)
            newest = storage.load_newest_reading(conn, profile.device_id, start=start, end=as_of)
            inputs[profile.device_id] = (profile, buckets, newest)
        if device_id is None:
            # every device's buckets are at hand: the fleet reference costs no extra scan
            fleet = fleet_median(_recent_voltage_var(b, recent_start) for _, b, _ in inputs.values())
        else:
            fleet = fleet_median(storage.load_fleet_voltage_vars(conn, start=recent_start, end=as_of).values())
        conn.commit()
        for profile, buckets, newest in inputs.values():
            episodes = storage.load_episodes(conn, profile.device_id, since=as_of - config.episodes_s)
            try:
                prediction = predict_device(
                    profile.device_id,
                    buckets,
                    newest,
                    profile,
                    as_of=as_of,
                    fleet_voltage_var=fleet,
                    episodes=episodes,
                    config=config,
                    computed_at=computed_at,
                )
            except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                # pure analysis of odd data: log it, keep the fleet's other results
                log.exception("maintenance prediction failed device=%s", profile.device_id)
                continue
            queued += _store(conn, prediction, config)
            conn.commit()
            predictions.append(prediction)
        owned = client is None
        redis_conn = client or redis_client()
        try:
            drained = drain_outbox(conn, redis_conn)
        finally:
            if owned:
                redis_conn.close()
    high = sum(1 for p in predictions if p.risk_level in config.notify_levels)
    summary = RunSummary(len(predictions), high, queued, drained.sent, drained.pending, drained.error)
    log.info("maintenance run %s", " ".join(f"{k}={v}" for k, v in summary.as_dict().items()))
    return summary
