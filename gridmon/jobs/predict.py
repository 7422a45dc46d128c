"""The predict job: read each device's recent history, predict, store, notify.

Called by the Celery task `workers.maintenance.predict` (periodically by beat, on demand by the
API). Each device is committed on its own, so one bad device does not void the others' results.
A notification (`gridmon.maintenance.notify`) is written to the outbox with its prediction and
delivered by the one publisher (`gridmon.jobs.publish`) after the predictions are committed. The
report is `RunSummary`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
import redis

from gridmon.domain.alerts import MAINTENANCE, MAINTENANCE_EVENT
from gridmon.domain.maintenance import CurrentReading, Episode
from gridmon.domain.shards import shard_of
from gridmon.jobs.publish import Publisher, get_publisher
from gridmon.maintenance.buckets import combined_variance
from gridmon.maintenance.factors import fleet_median
from gridmon.maintenance.model import DeviceProfile, MaintenanceConfig, MaintenancePrediction
from gridmon.maintenance.notify import message, should_notify
from gridmon.maintenance.predict import predict_device
from gridmon.storage import alerts, db, devices, maintenance_reads, outbox, predictions

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
    predictions.lock_device(conn, prediction.device_id)
    previous = predictions.previous_level(conn, prediction.device_id)
    prediction_id = predictions.insert_prediction(conn, prediction)
    if not should_notify(previous, prediction.risk_level, config.notify_levels):
        return False
    outbox.enqueue(
        conn,
        topic=MAINTENANCE.name,
        device_id=prediction.device_id,
        event=MAINTENANCE_EVENT,
        payload=message(prediction, previous, prediction_id),
        prediction_id=prediction_id,
    )
    return True


def _episodes(conn: psycopg.Connection, device_id: str, since: float) -> list[Episode]:
    return [Episode(*row) for row in alerts.device_episodes(conn, device_id, since=since)]


def _deliver(client: redis.Redis | None) -> tuple[int, str | None]:
    """Drain the outbox (every topic): through `client` when given, else the process's publisher."""
    if client is None:
        result = get_publisher().drain()
    else:
        publisher = Publisher(client=client)
        try:
            result = publisher.drain()
        finally:
            publisher.close()
    return result.published, result.error


def run_predictions(
    device_id: str | None = None,
    *,
    now: datetime | None = None,
    config: MaintenanceConfig | None = None,
    client: redis.Redis | None = None,
    shard: tuple[int, int] | None = None,
) -> RunSummary:
    """Predict for one device, or for every device seen within the lookback window, or for those
    of one shard (`shard` = (shard, shards): the devices `gridmon.domain.shards` puts there)."""
    config = config or MaintenanceConfig()
    computed_at = now or datetime.now(UTC)
    as_of = computed_at.timestamp()
    start = as_of - config.lookback_s
    recent_start = as_of - config.recent_s
    done: list[MaintenancePrediction] = []
    queued = 0
    with db.connection() as conn:
        profiles = [
            DeviceProfile.from_columns(*row)
            for row in devices.maintenance_profiles(conn, device_id=device_id, seen_since=start)
        ]
        if shard is not None:
            profiles = [p for p in profiles if shard_of(p.device_id, shard[1]) == shard[0]]
        inputs: dict[str, tuple[DeviceProfile, pd.DataFrame, CurrentReading | None]] = {}
        for profile in profiles:
            buckets = maintenance_reads.load_buckets(conn, profile, start=start, end=as_of, config=config)
            newest = maintenance_reads.load_newest_reading(conn, profile.device_id, start=start, end=as_of)
            inputs[profile.device_id] = (profile, buckets, newest)
        if device_id is None and shard is None:
            # every device's buckets are at hand: the fleet reference costs no extra scan
            fleet = fleet_median(_recent_voltage_var(b, recent_start) for _, b, _ in inputs.values())
        else:
            variances = maintenance_reads.load_fleet_voltage_vars(conn, start=recent_start, end=as_of)
            fleet = fleet_median(variances.values())
        conn.commit()
        for profile, buckets, newest in inputs.values():
            episodes = _episodes(conn, profile.device_id, as_of - config.episodes_s)
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
            done.append(prediction)
    sent, error = _deliver(client)
    with db.connection() as conn:
        pending = outbox.count_pending(conn)
    high = sum(1 for p in done if p.risk_level in config.notify_levels)
    summary = RunSummary(len(done), high, queued, sent, pending, error)
    log.info("maintenance run %s", " ".join(f"{k}={v}" for k, v in summary.as_dict().items()))
    return summary
