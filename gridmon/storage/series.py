"""Readings read back as series for the API: raw rows of a device in a range, the latest reading
and the device's recent rate. Bucketed reads and window statistics come from the history rollups
(`gridmon.storage.rollups`).

What predictive maintenance reads from the same table is `gridmon.storage.maintenance_reads`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

_RAW = """
SELECT ts, voltage, current, temperature, extra FROM sensor_readings
WHERE device_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s
"""
_LATEST = """
SELECT ts, voltage, current, temperature, extra FROM sensor_readings WHERE device_id = %s ORDER BY ts DESC LIMIT 1
"""
# Readings of a device in the `window` before its last reading, counted up to `cap` (bounded work).
_RECENT = """
SELECT count(*) FROM (
    SELECT 1 FROM sensor_readings r JOIN devices d USING (device_id)
    WHERE d.device_id = %(device)s AND r.ts > d.last_seen - %(window)s AND r.ts <= d.last_seen
    LIMIT %(cap)s
) s
"""


def raw_readings(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, limit: int
) -> list[tuple[Any, ...]]:
    """(ts, voltage, current, temperature, extra) rows in [start, end), oldest first, at most `limit`."""
    return conn.execute(_RAW, (device_id, start, end, limit)).fetchall()


def latest_reading(conn: psycopg.Connection, device_id: str) -> tuple[Any, ...] | None:
    """(ts, voltage, current, temperature, extra) of the device's newest reading, or None."""
    row = conn.execute(_LATEST, (device_id,)).fetchone()
    return tuple(row) if row else None


def recent_rate(conn: psycopg.Connection, device_id: str, window: timedelta, cap: int = 100_000) -> float:
    """Readings per second the device sent in the `window` before its latest reading (the API's
    estimate of how many readings a range holds; counts at most `cap` index entries)."""
    row = conn.execute(_RECENT, {"device": device_id, "window": window, "cap": cap}).fetchone()
    return (int(row[0]) if row else 0) / window.total_seconds()
