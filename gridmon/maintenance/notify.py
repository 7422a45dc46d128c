"""High-risk maintenance notifications: decided with the prediction, delivered to Redis from an outbox.

A device is announced when its risk level changes to one of `MaintenanceConfig.notify_levels`
(once per change, not every run). The decision is written to `maintenance_outbox` in the same
transaction as the prediction; `drain_outbox` then pushes unsent rows the way anomaly alerts go
out — `LPUSH alerts:maintenance` (trimmed to `LIST_CAP`) and `PUBLISH alerts:maintenance:channel`
— and marks them sent. When Redis is down the rows stay unsent and the next run delivers them.
Delivery is at-least-once: a crash between Redis and the commit repeats a message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import redis

from gridmon.config import get_settings
from gridmon.maintenance.model import MaintenancePrediction

log = logging.getLogger(__name__)

LIST_KEY = "alerts:maintenance"
CHANNEL = "alerts:maintenance:channel"
LIST_CAP = 1000


def should_notify(previous: str | None, current: str, notify_levels: tuple[str, ...]) -> bool:
    """A change of level into a notified level (a first prediction counts as a change)."""
    return current in notify_levels and current != previous


def message(prediction: MaintenancePrediction, previous: str | None, prediction_id: int) -> dict[str, Any]:
    """The JSON body of a maintenance alert."""
    return {
        "type": "maintenance",
        "prediction_id": prediction_id,
        "previous_level": previous,
        **{k: v for k, v in prediction.to_dict().items() if k != "inputs"},
    }


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=2, socket_connect_timeout=2)


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int
    pending: int
    error: str | None = None


def _pending(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM maintenance_outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def drain_outbox(conn: psycopg.Connection, client: redis.Redis, *, batch: int = 500) -> DrainResult:
    """Deliver unsent notifications, oldest first; stops at the first Redis error and keeps the rest."""
    sent = 0
    error: str | None = None
    rows = conn.execute(
        "SELECT id, payload FROM maintenance_outbox WHERE sent_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (batch,),
    ).fetchall()
    for row_id, payload in rows:
        body = orjson.dumps(payload)
        try:
            pipe = client.pipeline(transaction=True)
            pipe.lpush(LIST_KEY, body)
            pipe.ltrim(LIST_KEY, 0, LIST_CAP - 1)
            pipe.publish(CHANNEL, body)
            pipe.execute()
        except redis.RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "redis unavailable, maintenance notifications kept for the next run (check GRIDMON_REDIS_URL) error=%s",
                error,
            )
            break
        conn.execute("UPDATE maintenance_outbox SET sent_at = now() WHERE id = %s", (row_id,))
        sent += 1
    pending = _pending(conn)
    if sent:
        log.info("maintenance notifications sent=%d pending=%d", sent, pending)
    return DrainResult(sent, pending, error)
