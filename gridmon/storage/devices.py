"""The `devices` table: one row per device that ever reported, with its optional profile.

Rows are created and their first/last seen times kept by the ingest write path
(`gridmon.storage.readings`); this module reads them and sets profiles. A summary row joins the
device's unresolved alert counts and its latest maintenance risk (what the API's device list shows).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

PROFILE_COLUMNS = ("kind", "location", "nominal_voltage", "rated_current", "temperature_limit")
LIMIT_COLUMNS = ("nominal_voltage", "rated_current", "temperature_limit")
_HAS_LIMITS = " OR ".join(f"{c} IS NOT NULL" for c in LIMIT_COLUMNS)

_SUMMARY_SELECT = """
SELECT d.device_id, d.first_seen, d.last_seen, d.last_seen >= now() - %(stale)s AS online,
       COALESCE(a.open, 0) AS open_alerts, COALESCE(a.acked, 0) AS acknowledged_alerts,
       p.risk_level, p.risk_score, p.computed_at AS risk_computed_at,
       d.kind, d.location, d.nominal_voltage, d.rated_current, d.temperature_limit
FROM devices d
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE al.state = 'open') AS open,
           count(*) FILTER (WHERE al.state = 'acknowledged') AS acked
    FROM alerts al WHERE al.device_id = d.device_id AND al.state <> 'resolved'
) a ON true
LEFT JOIN LATERAL (
    SELECT mp.risk_level, mp.risk_score, mp.computed_at FROM maintenance_predictions mp
    WHERE mp.device_id = d.device_id ORDER BY mp.computed_at DESC LIMIT 1
) p ON true
"""
_LIST = (
    _SUMMARY_SELECT
    + """
WHERE (%(after)s::text IS NULL OR d.device_id > %(after)s)
  AND (%(status)s::text IS NULL OR (%(status)s = 'online') = (d.last_seen >= now() - %(stale)s))
  AND (%(kind)s::text IS NULL OR d.kind = %(kind)s)
ORDER BY d.device_id
LIMIT %(n)s
"""
)
_ONE = _SUMMARY_SELECT + "WHERE d.device_id = %(device)s"
_PUT = """
UPDATE devices SET kind = %(kind)s, location = %(location)s, nominal_voltage = %(nominal_voltage)s,
       rated_current = %(rated_current)s, temperature_limit = %(temperature_limit)s
WHERE device_id = %(device)s
"""
_ONLINE_STALE = """
SELECT count(*) FILTER (WHERE last_seen >= now() - %(stale)s),
       count(*) FILTER (WHERE last_seen < now() - %(stale)s)
FROM devices
"""

Row = dict[str, Any]


def list_summaries(
    conn: psycopg.Connection,
    *,
    after: str | None,
    status: str | None,
    kind: str | None,
    stale_after: timedelta,
    limit: int,
) -> list[Row]:
    """Summary rows (see module doc) ordered by device id, after `after`, at most `limit`."""
    params = {"after": after, "status": status, "kind": kind, "stale": stale_after, "n": limit}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_LIST, params).fetchall()


def get_summary(conn: psycopg.Connection, device_id: str, *, stale_after: timedelta) -> Row | None:
    """One device's summary row, or None when it never reported."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_ONE, {"device": device_id, "stale": stale_after}).fetchone()


def set_profile(conn: psycopg.Connection, device_id: str, profile: Row) -> bool:
    """Replace the profile columns of a device (missing keys become NULL). False if no such device."""
    values = {column: profile.get(column) for column in PROFILE_COLUMNS}
    return conn.execute(_PUT, {**values, "device": device_id}).rowcount > 0


def device_exists(conn: psycopg.Connection, device_id: str) -> bool:
    return conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,)).fetchone() is not None


def limit_profiles(conn: psycopg.Connection, device_ids: Iterable[str] | None) -> list[Row]:
    """Limit columns of the devices (all when None) whose profile sets at least one of them."""
    query = f"SELECT device_id, {', '.join(LIMIT_COLUMNS)} FROM devices WHERE ({_HAS_LIMITS})"
    params: tuple[object, ...] = ()
    if device_ids is not None:
        query += " AND device_id = ANY(%s)"
        params = (list(device_ids),)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def maintenance_profiles(
    conn: psycopg.Connection, *, device_id: str | None, seen_since: float
) -> list[tuple[str, float | None, float | None]]:
    """(device_id, temperature_limit, rated_current) of one named device (NULLs if it has no row),
    or of every device seen since `seen_since` (epoch s), by device id."""
    if device_id is not None:
        row = conn.execute(
            "SELECT temperature_limit, rated_current FROM devices WHERE device_id = %s", (device_id,)
        ).fetchone()
        return [(device_id, *(row or (None, None)))]
    rows = conn.execute(
        "SELECT device_id, temperature_limit, rated_current FROM devices"
        " WHERE last_seen > to_timestamp(%s) ORDER BY device_id",
        (seen_since,),
    ).fetchall()
    return [(str(d), t, r) for d, t, r in rows]


def count_online_stale(conn: psycopg.Connection, *, stale_after: timedelta) -> tuple[int, int]:
    """(online, stale) device counts."""
    row = conn.execute(_ONLINE_STALE, {"stale": stale_after}).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)



def kinds(conn: psycopg.Connection, device_ids: Iterable[str]) -> dict[str, str | None]:
    """Profile kind of each of these devices (None when unset or unknown)."""
    rows = conn.execute(
        "SELECT device_id, kind FROM devices WHERE device_id = ANY(%s)", (list(device_ids),)
    ).fetchall()
    return {str(d): k for d, k in rows}


def recently_seen(conn: psycopg.Connection, since: datetime, per_kind: int) -> list[tuple[str, str | None]]:
    """(device_id, kind) of up to `per_kind` devices per profile kind seen since `since`
    (the most recently seen first)."""
    rows = conn.execute(
        """SELECT device_id, kind FROM (
               SELECT device_id, kind,
                      row_number() OVER (PARTITION BY coalesce(kind, '') ORDER BY last_seen DESC, device_id) AS k
               FROM devices WHERE last_seen >= %s) ranked
           WHERE k <= %s ORDER BY kind NULLS FIRST, device_id""",
        (since, per_kind),
    ).fetchall()
    return [(str(d), k) for d, k in rows]


_REGISTER = """
INSERT INTO devices (device_id, first_seen, last_seen, kind, location, nominal_voltage, rated_current,
                     temperature_limit)
VALUES (%(device)s, to_timestamp(%(seen)s), to_timestamp(%(seen)s), %(kind)s, %(location)s, %(nominal_voltage)s,
        %(rated_current)s, %(temperature_limit)s)
ON CONFLICT (device_id) DO NOTHING
"""


def register_devices(conn: psycopg.Connection, profiles: dict[str, Row], *, seen_at: float) -> int:
    """Create the devices that do not exist yet, with their profiles and `seen_at` (epoch s) as
    first and last seen (their readings move both); existing devices are left alone. Returns how
    many were created."""
    created = 0
    for device_id, profile in profiles.items():
        values = {column: profile.get(column) for column in PROFILE_COLUMNS}
        created += conn.execute(_REGISTER, {**values, "device": device_id, "seen": seen_at}).rowcount
    return created


def count_known(conn: psycopg.Connection, device_ids: Iterable[str]) -> int:
    """How many of these devices exist."""
    row = conn.execute("SELECT count(*) FROM devices WHERE device_id = ANY(%s)", (list(device_ids),)).fetchone()
    return int(row[0]) if row else 0
