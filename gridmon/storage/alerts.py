"""The `alerts` table (the source of truth) and `alert_readings`: every statement about alerts.

Every state change that consumers must hear about writes its outbox row in the same transaction
(`emit`), so an alert is never stored without its event or published without being stored. The
publisher (`gridmon.jobs.publish`) moves outbox rows to Redis later. The episode rules that decide
*which* change to make live in `gridmon.alerts`; this module only runs the statements.

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

from gridmon.domain.alerts import ANOMALIES, AnomalyAlert
from gridmon.storage import outbox
from gridmon.storage.db import table_exists

log = logging.getLogger(__name__)

STATES = ("open", "acknowledged", "resolved")
COLUMNS = (
    "id, device_id, metric, detector, state, severity, opened_at, last_seen_at, resolved_at, resolved_reason, "
    "value, value_ts, score, description, readings_count, ack_note, acked_at, created_at, updated_at, "
    "kind, metrics, expected, band_lo, band_hi"
)
KINDS = ("limit", "anomaly", "no_data", "data_gap")

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
    outbox.enqueue(
        conn,
        topic=ANOMALIES.name,
        device_id=row["device_id"],
        event=event,
        payload=message.to_dict(),
        alert_id=int(row["id"]),
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
    so the ingest job, the scan and the staleness check cannot deadlock each other."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"alert/{device_id}/{metric}",))


def open_alert(conn: psycopg.Connection, device_id: str, metric: str) -> Row | None:
    """The unresolved limit or no-data alert of (device, metric), row-locked, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM alerts WHERE device_id = %s AND metric = %s AND state <> 'resolved' "
            "AND kind <> 'anomaly' FOR UPDATE",
            (device_id, metric),
        ).fetchone()


def devices_with_open(conn: psycopg.Connection, kind: str) -> set[str]:
    """Devices with an unresolved alert of `kind`."""
    rows = conn.execute("SELECT device_id FROM alerts WHERE kind = %s AND state <> 'resolved'", (kind,)).fetchall()
    return {str(r[0]) for r in rows}


def open_anomaly(conn: psycopg.Connection, device_id: str) -> Row | None:
    """The unresolved anomaly alert of a device (one per device), row-locked, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {COLUMNS} FROM alerts WHERE device_id = %s AND kind = 'anomaly' AND state <> 'resolved' "
            "FOR UPDATE",
            (device_id,),
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
    kind: str = "limit",
    metrics: list[str] | None = None,
    expected: float | None = None,
    band: tuple[float, float] | None = None,
) -> Row:
    """Insert an alert; with `resolved_reason` it is stored already resolved (a past episode).

    `kind` is `limit`, `anomaly`, `no_data` or `data_gap`; anomaly alerts list their `metrics` and carry
    the expected value and band (low, high) of their peak metric at the peak."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"""
            INSERT INTO alerts (device_id, metric, detector, state, severity, opened_at, last_seen_at,
                                resolved_at, resolved_reason, value, value_ts, score, description, readings_count,
                                kind, metrics, expected, band_lo, band_hi)
            VALUES (%(device_id)s, %(metric)s, %(detector)s, %(state)s, %(severity)s, %(opened_at)s,
                    %(last_seen_at)s, CASE WHEN %(reason)s::text IS NULL THEN NULL ELSE now() END, %(reason)s,
                    %(value)s, %(value_ts)s, %(score)s, %(description)s, %(readings_count)s,
                    %(kind)s, %(metrics)s, %(expected)s, %(band_lo)s, %(band_hi)s)
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
                "kind": kind,
                "metrics": metrics if metrics is not None else [metric],
                "expected": expected,
                "band_lo": band[0] if band else None,
                "band_hi": band[1] if band else None,
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
    dedupe only matters while the ingest check and the scan may still both report a reading)."""
    cur = conn.execute(
        """DELETE FROM alert_readings ar USING alerts a
           WHERE a.id = ar.alert_id AND a.state = 'resolved' AND a.resolved_at < now() - %s""",
        (older_than,),
    )
    return max(cur.rowcount, 0)


def count_new_readings(conn: psycopg.Connection, alert_id: int, ts: list[float]) -> int:
    """Record the readings (epoch s) of this alert; returns how many were not counted before."""
    cur = conn.execute(
        "INSERT INTO alert_readings (alert_id, ts) SELECT %s, to_timestamp(t) FROM unnest(%s::float8[]) AS t "
        "ON CONFLICT DO NOTHING",
        (alert_id, ts),
    )
    return max(cur.rowcount, 0)


def covering_resolved(
    conn: psycopg.Connection, device_id: str, metric: str, start: float, end: float
) -> Row | None:
    """The newest resolved alert of this key whose span contains all of [start, end], row-locked."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""SELECT {COLUMNS} FROM alerts
                WHERE device_id = %s AND metric = %s AND state = 'resolved' AND kind <> 'anomaly'
                  AND opened_at <= %s AND last_seen_at >= %s
                ORDER BY opened_at DESC LIMIT 1 FOR UPDATE""",
            (device_id, metric, to_datetime(start), to_datetime(end)),
        ).fetchone()


def unresolved_keys(conn: psycopg.Connection, device_ids: list[str], *, except_metric: str) -> set[tuple[str, str]]:
    """(device_id, metric) of the unresolved alerts of these devices, leaving out one metric."""
    rows = conn.execute(
        "SELECT device_id, metric FROM alerts WHERE state <> 'resolved' AND kind = 'limit' AND metric <> %s "
        "AND device_id = ANY(%s)",
        (except_metric, device_ids),
    ).fetchall()
    return {(str(d), str(m)) for d, m in rows}


def list_alerts(
    conn: psycopg.Connection,
    *,
    device: str | None,
    severities: list[str] | None,
    states: list[str] | None,
    since: datetime | None,
    before: int | None,
    limit: int,
) -> list[Row]:
    """Alerts matching the filters (None = any), newest first, ids below `before`, at most `limit`."""
    params = {
        "device": device,
        "severity": severities,
        "state": states,
        "since": since,
        "before": before,
        "n": limit,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_LIST, params).fetchall()


_LIST = f"""
SELECT {COLUMNS} FROM alerts
WHERE (%(device)s::text IS NULL OR device_id = %(device)s)
  AND (%(severity)s::text[] IS NULL OR severity = ANY(%(severity)s))
  AND (%(state)s::text[] IS NULL OR state = ANY(%(state)s))
  AND (%(since)s::timestamptz IS NULL OR opened_at >= %(since)s)
  AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(n)s
"""


def episode_spans(conn: psycopg.Connection, start: datetime, end: datetime) -> list[tuple[str, float, float]]:
    """(device_id, opened_at, last_seen_at) in epoch s of the alerts (not `no_data`, not `data_gap`)
    overlapping [start, end)."""
    rows = conn.execute(
        """SELECT device_id, extract(epoch FROM opened_at)::float8, extract(epoch FROM last_seen_at)::float8
           FROM alerts WHERE metric NOT IN ('no_data', 'data_gap') AND last_seen_at >= %s AND opened_at < %s""",
        (start, end),
    ).fetchall()
    return [(str(d), float(lo), float(hi)) for d, lo, hi in rows]


def alerts_table_exists(conn: psycopg.Connection) -> bool:
    return table_exists(conn, "alerts")


EpisodeRow = tuple[str, str, str, str, float]


def device_episodes(conn: psycopg.Connection, device_id: str, *, since: float) -> list[EpisodeRow]:
    """(metric, detector, severity, state, opened_at epoch) of the device's alerts opened after
    `since`; none when there is no alerts table or it has an unexpected shape."""
    if not alerts_table_exists(conn):
        return []
    try:
        with conn.transaction():
            rows = conn.execute(
                "SELECT metric, detector, severity, state, extract(epoch FROM opened_at)::float8 FROM alerts"
                " WHERE device_id = %s AND opened_at > to_timestamp(%s) ORDER BY opened_at",
                (device_id, since),
            ).fetchall()
    except psycopg.errors.UndefinedColumn as exc:
        log.warning("alerts table has an unexpected shape, episodes ignored error=%s", exc)
        return []
    return [(str(m), str(d), str(sev), str(state), float(at)) for m, d, sev, state, at in rows]


def count_unresolved(conn: psycopg.Connection) -> list[tuple[str, str, int]]:
    """(state, severity, count) of the unresolved alerts."""
    rows = conn.execute(
        "SELECT state, severity, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY state, severity"
    ).fetchall()
    return [(str(state), str(severity), int(n)) for state, severity, n in rows]


def count_unresolved_total(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM alerts WHERE state <> 'resolved'").fetchone()
    return int(row[0]) if row else 0
