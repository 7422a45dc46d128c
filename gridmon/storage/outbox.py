"""The outbox (`alert_outbox`): events for Redis consumers, written in the same transaction as the
change they announce and published afterwards by the one publisher (`gridmon.jobs.publish`).

One table for every topic: anomaly alert events (`alert_id` set) and maintenance risk-level
notifications (`prediction_id` set). A row is pending while `published_at` is NULL; drainers
serialise on one advisory lock so rows leave in id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_DRAIN_LOCK = (0x67726D6E, 1)  # ("grmn", 1): the two-int advisory key space, apart from alert keys

PendingRow = tuple[int, str, str, dict[str, Any]]


def enqueue(
    conn: psycopg.Connection,
    *,
    topic: str,
    device_id: str,
    event: str,
    payload: dict[str, Any],
    alert_id: int | None = None,
    prediction_id: int | None = None,
) -> None:
    """Write one pending event (caller's transaction)."""
    conn.execute(
        "INSERT INTO alert_outbox (topic, device_id, event, payload, alert_id, prediction_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (topic, device_id, event, Jsonb(payload), alert_id, prediction_id),
    )


def lock_for_drain(conn: psycopg.Connection, *, wait: bool, timeout_s: float = 10.0) -> bool:
    """Take the drainers' lock until commit. With `wait` False, give up at once when another
    drainer holds it (returns False); with `wait`, raise LockNotAvailable after `timeout_s`."""
    if not wait:
        got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", _DRAIN_LOCK).fetchone()
        return bool(got and got[0])
    conn.execute(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'")
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _DRAIN_LOCK)
    return True


def pending(conn: psycopg.Connection, limit: int) -> list[PendingRow]:
    """The oldest `limit` unpublished rows as (id, topic, event, payload), in id order."""
    rows = conn.execute(
        "SELECT id, topic, event, payload FROM alert_outbox WHERE published_at IS NULL ORDER BY id LIMIT %s",
        (limit,),
    ).fetchall()
    return [(int(i), str(t), str(e), p) for i, t, e, p in rows]


def mark_published(conn: psycopg.Connection, ids: Sequence[int]) -> None:
    conn.execute("UPDATE alert_outbox SET published_at = now() WHERE id = ANY(%s)", (list(ids),))


def count_pending(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM alert_outbox WHERE published_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def prune_published(conn: psycopg.Connection, older_than: timedelta) -> int:
    """Delete rows published longer ago than `older_than` (Redis and the streams have them)."""
    cur = conn.execute(
        "DELETE FROM alert_outbox WHERE published_at IS NOT NULL AND published_at < now() - %s", (older_than,)
    )
    return max(cur.rowcount, 0)
