"""Readings read back as series for the API: raw rows of a device in a range, per-bucket
avg/min/max/count (`time_bucket` with TimescaleDB, `date_bin` otherwise — one of two fixed
statement texts, never built from input), window statistics and the latest reading.

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
_BUCKETED_TAIL = """ AS b, count(*), avg(voltage), min(voltage), max(voltage), avg(current), min(current), max(current),
       avg(temperature), min(temperature), max(temperature)
FROM sensor_readings WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
GROUP BY b ORDER BY b
"""
_BUCKETED_TIMESCALE = "SELECT time_bucket(%(width)s, ts)" + _BUCKETED_TAIL
_BUCKETED_DATE_BIN = "SELECT date_bin(%(width)s, ts, %(origin)s)" + _BUCKETED_TAIL
_STATS = """
SELECT count(*), avg(voltage), min(voltage), max(voltage), avg(current), min(current), max(current),
       avg(temperature), min(temperature), max(temperature)
FROM sensor_readings WHERE device_id = %s AND ts > %s
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
_ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")  # buckets aligned to UTC midnight

def has_timescale(conn: psycopg.Connection) -> bool:
    """Whether the TimescaleDB extension (and so `time_bucket`) is installed."""
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def raw_readings(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, limit: int
) -> list[tuple[Any, ...]]:
    """(ts, voltage, current, temperature, extra) rows in [start, end), oldest first, at most `limit`."""
    return conn.execute(_RAW, (device_id, start, end, limit)).fetchall()


def bucketed_readings(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, width: timedelta, *, timescale: bool
) -> list[tuple[Any, ...]]:
    """(bucket start, count, then avg/min/max of voltage, current, temperature) per non-empty bucket."""
    query = _BUCKETED_TIMESCALE if timescale else _BUCKETED_DATE_BIN
    params = {"device": device_id, "start": start, "end": end, "width": width, "origin": _ORIGIN}
    return conn.execute(query, params).fetchall()


def window_stats(conn: psycopg.Connection, device_id: str, since: datetime) -> tuple[Any, ...]:
    """(count, then avg/min/max of voltage, current, temperature) of the readings after `since`."""
    row = conn.execute(_STATS, (device_id, since)).fetchone()
    assert row is not None  # an aggregate without GROUP BY always gives one row
    return tuple(row)


def latest_reading(conn: psycopg.Connection, device_id: str) -> tuple[Any, ...] | None:
    """(ts, voltage, current, temperature, extra) of the device's newest reading, or None."""
    row = conn.execute(_LATEST, (device_id,)).fetchone()
    return tuple(row) if row else None


def recent_rate(conn: psycopg.Connection, device_id: str, window: timedelta, cap: int = 100_000) -> float:
    """Readings per second the device sent in the `window` before its latest reading (the API's
    estimate of how many readings a range holds; counts at most `cap` index entries)."""
    row = conn.execute(_RECENT, {"device": device_id, "window": window, "cap": cap}).fetchone()
    return (int(row[0]) if row else 0) / window.total_seconds()
