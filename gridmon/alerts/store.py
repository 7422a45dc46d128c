"""The `alerts` table (the source of truth) and its outbox: row-level operations.

Every state change that consumers must hear about writes its `alert_outbox` row in the same
transaction (`_emit`), so an alert is never stored without its event or published without being
stored. The publisher (`gridmon.alerts.publisher`) moves outbox rows to Redis later.

Lifecycle: open → acknowledged → resolved (acknowledging is optional; an acknowledged alert keeps
collecting readings and can still escalate). `acknowledge` and `resolve` are what the API calls;
both return None for an unknown id (→ 404).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gridmon.alerts.message import AnomalyAlert

log = logging.getLogger(__name__)

STATES = ("open", "acknowledged", "resolved")
COLUMNS = (
    "id, device_id, metric, detector, state, severity, opened_at, last_seen_at, resolved_at, resolved_reason, "
    "value, value_ts, score, description, readings_count, ack_note, acked_at, created_at, updated_at"
)

Row = dict[str, Any]


class AlertStateError(ValueError):
    """The requested transition is not allowed from the alert's current state (→ 409)."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An event written to the outbox (returned so callers can count and log)."""

    alert_id: int
    event: str
    device_id: str
    metric: str
    severity: str


def to_datetime(when: float | datetime) -> datetime:
    """Epoch seconds as an aware UTC datetime (a datetime passes through unchanged)."""
    return when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)


def emit(conn: psycopg.Connection, row: Row, event: str, ts: float | None = None) -> AlertEvent:
    """Write the outbox row for `event` on alert `row` (caller's transaction)."""
    message = AnomalyAlert.from_row(row, event, ts)
    conn.execute(
        "INSERT INTO alert_outbox (alert_id, event, payload) VALUES (%s, %s, %s)",
        (row["id"], event, Jsonb(message.to_dict())),
    )
    log.info(
        "alert %s id=%s device=%s metric=%s severity=%s detector=%s",
        event,
        row["id"],
        row["device_id"],
        row["metric"],
        row["severity"],
        row["detector"],
    )
    return AlertEvent(int(row["id"]), event, row["device_id"], row["metric"], row["severity"])


def lock_key(conn: psycopg.Connection, device_id: str, metric: str) -> None:
    """Serialise writers of one (device, metric) until commit. Callers lock keys in sorted order,
    so the ingest hook, the scan and the staleness check cannot deadlock each other."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"alert/{device_id}/{metric}",))


def open_alert(conn: psycopg.Connection, device_id: str, metric: str) -> Row | None:
    """The unresolved alert of (device, metric), row-locked, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM alerts WHERE device_id = %s AND metric = %s AND state <> 'resolved' FOR UPDATE",
            (device_id, metric),
        ).fetchone()


def insert_alert(
    conn: psycopg.Connection,
    *,
    device_id: str,
    metric: str,
    detector: str,
    severity: str,
    opened_at: float | datetime,
    last_seen_at: float | datetime,
    value: float | None,
    value_ts: float | None,
    score: float | None,
    description: str,
    readings_count: int = 0,
    resolved_reason: str | None = None,
) -> Row:
    """Insert an alert; with `resolved_reason` it is stored already resolved (a past episode)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"""
            INSERT INTO alerts (device_id, metric, detector, state, severity, opened_at, last_seen_at,
                                resolved_at, resolved_reason, value, value_ts, score, description, readings_count)
            VALUES (%(device_id)s, %(metric)s, %(detector)s, %(state)s, %(severity)s, %(opened_at)s,
                    %(last_seen_at)s, CASE WHEN %(reason)s::text IS NULL THEN NULL ELSE now() END, %(reason)s,
                    %(value)s, %(value_ts)s, %(score)s, %(description)s, %(readings_count)s)
            RETURNING {COLUMNS}
            """,
            {
                "device_id": device_id,
                "metric": metric,
                "detector": detector,
                "state": "open" if resolved_reason is None else "resolved",
                "severity": severity,
                "opened_at": to_datetime(opened_at),
                "last_seen_at": to_datetime(last_seen_at),
                "reason": resolved_reason,
                "value": value,
                "value_ts": to_datetime(value_ts) if value_ts is not None else None,
                "score": score,
                "description": description,
                "readings_count": readings_count,
            },
        ).fetchone()
    assert row is not None
    return row


def update_alert(conn: psycopg.Connection, alert_id: int, changes: Row) -> Row:
    """Set columns of one alert (and `updated_at`); returns the new row."""
    assignments = ", ".join(f"{name} = %({name})s" for name in changes)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE alerts SET {assignments}, updated_at = now() WHERE id = %(_id)s RETURNING {COLUMNS}",
            {**changes, "_id": alert_id},
        ).fetchone()
    if row is None:
        raise LookupError(f"alert {alert_id} vanished")
    return row


def resolve_row(conn: psycopg.Connection, row: Row, reason: str) -> tuple[Row, AlertEvent]:
    """Resolve an unresolved alert and emit `resolved`."""
    with conn.cursor(row_factory=dict_row) as cur:
        new = cur.execute(
            f"""UPDATE alerts SET state = 'resolved', resolved_at = now(), resolved_reason = %s, updated_at = now()
                WHERE id = %s RETURNING {COLUMNS}""",
            (reason, row["id"]),
        ).fetchone()
    assert new is not None
    return new, emit(conn, new, "resolved")


def get_alert(conn: psycopg.Connection, alert_id: int) -> Row | None:
    """One alert as a dict of its columns, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM alerts WHERE id = %s", (alert_id,)).fetchone()


def acknowledge(conn: psycopg.Connection, alert_id: int, note: str | None = None) -> Row | None:
    """Mark an open alert acknowledged (operator saw it). None if no such alert.

    Acknowledging again updates the note; a resolved alert raises `AlertStateError`.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {COLUMNS} FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
        if row is None:
            return None
        if row["state"] == "resolved":
            raise AlertStateError(f"alert {alert_id} is resolved")
        return update_alert(
            conn,
            alert_id,
            {"state": "acknowledged", "ack_note": note, "acked_at": row["acked_at"] or datetime.now(UTC)},
        )


def resolve(conn: psycopg.Connection, alert_id: int, reason: str = "operator") -> Row | None:
    """Resolve an alert by hand (emits `resolved`). None if no such alert; already resolved is a no-op.

    If the fault goes on, its next anomalous reading opens a new alert.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {COLUMNS} FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
    if row is None:
        return None
    if row["state"] == "resolved":
        return row
    new, _ = resolve_row(conn, row, reason)
    return new


def prune_counted_readings(conn: psycopg.Connection, older_than: timedelta) -> int:
    """Forget which readings alerts resolved longer ago than `older_than` counted (the
    dedupe only matters while the hook and the scan may still both report a reading)."""
    cur = conn.execute(
        """DELETE FROM alert_readings ar USING alerts a
           WHERE a.id = ar.alert_id AND a.state = 'resolved' AND a.resolved_at < now() - %s""",
        (older_than,),
    )
    return max(cur.rowcount, 0)


def prune_published_events(conn: psycopg.Connection, older_than: timedelta) -> int:
    """Delete outbox rows published longer ago than `older_than` (Redis and the stream have them)."""
    cur = conn.execute(
        "DELETE FROM alert_outbox WHERE published_at IS NOT NULL AND published_at < now() - %s", (older_than,)
    )
    return max(cur.rowcount, 0)
