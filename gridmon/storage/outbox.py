"""The outbox (`alert_outbox`): events for Redis consumers, written in the same transaction as the
change they announce and published afterwards by the one publisher (`gridmon.jobs.publish`).

One table for every topic: anomaly alert events (`alert_id` set) and maintenance risk-level
notifications (`prediction_id` set). Each sink delivers every row on its own and has its own
column, NULL while the row is pending for it (`SINKS`: `published_at` for Redis, `alertmanager_at`
for Alertmanager), so one sink being down never holds back the other. The drainers of one sink
serialise on that sink's advisory lock so rows leave in id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

REDIS = "redis"
ALERTMANAGER = "alertmanager"
# sink → (its column, its drain lock in the two-int advisory key space ("grmn", n), apart from alert keys)
SINKS: dict[str, tuple[str, tuple[int, int]]] = {
    REDIS: ("published_at", (0x67726D6E, 1)),
    ALERTMANAGER: ("alertmanager_at", (0x67726D6E, 2)),
}

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


def _column(sink: str) -> str:
    return SINKS[sink][0]


def lock_for_drain(conn: psycopg.Connection, *, wait: bool, timeout_s: float = 10.0, sink: str = REDIS) -> bool:
    """Take the sink's drain lock until commit. With `wait` False, give up at once when another
    drainer holds it (returns False); with `wait`, raise LockNotAvailable after `timeout_s`."""
    key = SINKS[sink][1]
    if not wait:
        got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", key).fetchone()
        return bool(got and got[0])
    conn.execute(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'")
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", key)
    return True


def pending(conn: psycopg.Connection, limit: int, sink: str = REDIS) -> list[PendingRow]:
    """The oldest `limit` rows not yet delivered by `sink` as (id, topic, event, payload), in id order."""
    rows = conn.execute(
        f"SELECT id, topic, event, payload FROM alert_outbox WHERE {_column(sink)} IS NULL ORDER BY id LIMIT %s",
        (limit,),
    ).fetchall()
    return [(int(i), str(t), str(e), p) for i, t, e, p in rows]


def mark_published(conn: psycopg.Connection, ids: Sequence[int], sink: str = REDIS) -> None:
    """Mark rows delivered by `sink` (after its target accepted them)."""
    conn.execute(f"UPDATE alert_outbox SET {_column(sink)} = now() WHERE id = ANY(%s)", (list(ids),))


def count_pending(conn: psycopg.Connection, sink: str = REDIS) -> int:
    row = conn.execute(f"SELECT count(*) FROM alert_outbox WHERE {_column(sink)} IS NULL").fetchone()
    return int(row[0]) if row else 0


def pending_stats(conn: psycopg.Connection, sinks: Sequence[str]) -> list[tuple[str, int, float]]:
    """(sink, rows pending, age in seconds of the oldest pending row, 0 when none) per sink."""
    out = []
    for sink in sinks:
        row = conn.execute(
            f"SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8"
            f" FROM alert_outbox WHERE {_column(sink)} IS NULL"
        ).fetchone()
        assert row is not None
        out.append((sink, int(row[0]), float(row[1])))
    return out


def prune_published(conn: psycopg.Connection, older_than: timedelta, sinks: Sequence[str] = (REDIS,)) -> int:
    """Delete rows every one of `sinks` delivered longer ago than `older_than` (the targets have them)."""
    done = " AND ".join(f"{_column(sink)} IS NOT NULL AND {_column(sink)} < now() - %(age)s" for sink in sinks)
    cur = conn.execute(f"DELETE FROM alert_outbox WHERE {done}", {"age": older_than})
    return max(cur.rowcount, 0)
