"""The statements of `gridmon bench query`: a private database, bulk history by COPY, the sizes it
reports, the raw-rows chart it compares with, and compressing every chunk (TimescaleDB).

Only the benchmark uses this module; the service's own reads and writes are elsewhere in
`gridmon.storage`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from gridmon.config import with_database

log = logging.getLogger(__name__)

_COPY = "COPY sensor_readings (device_id, ts, voltage, current, temperature) FROM STDIN"
_DEVICES = "INSERT INTO devices (device_id, first_seen, last_seen) SELECT d, %s, %s FROM unnest(%s::text[]) d"
_RAW_CHART = """
SELECT date_bin(%(width)s, ts, '2000-01-01') AS b, count(*), avg(voltage), min(voltage), max(voltage),
       avg(current), min(current), max(current), avg(temperature), min(temperature), max(temperature)
FROM sensor_readings WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s GROUP BY b ORDER BY b
"""
_PAUSE_REFRESH = """
SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
WHERE proc_name = 'policy_refresh_continuous_aggregate'
"""
_TIMESCALE_SIZES = """
SELECT (SELECT table_bytes + COALESCE(toast_bytes, 0) FROM hypertable_detailed_size('sensor_readings')),
       (SELECT index_bytes FROM hypertable_detailed_size('sensor_readings')),
       (SELECT sum(hypertable_size(format('%I.%I', materialization_hypertable_schema,
                                          materialization_hypertable_name)::regclass))
        FROM timescaledb_information.continuous_aggregates)
"""
_PLAIN_SIZES = """
SELECT pg_table_size('sensor_readings'), pg_indexes_size('sensor_readings'),
       pg_total_relation_size('readings_1m') + pg_total_relation_size('readings_1h')
"""
_COMPRESS = (
    "ALTER TABLE sensor_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', "
    "timescaledb.compress_orderby = 'ts')",
    "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('sensor_readings') c",
    "ANALYZE sensor_readings",
)


def drop_database(url: str) -> None:
    """Drop the database of `url` (its sessions ended first) if it exists."""
    name = url.rpartition("/")[2]
    with psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def pause_refresh_policies(conn: psycopg.Connection) -> None:
    """Stop the continuous aggregates' background refreshes (TimescaleDB) for a timed run."""
    conn.execute(_PAUSE_REFRESH)


def copy_history(conn: psycopg.Connection, blocks: Iterable[str]) -> None:
    """COPY text blocks of (device_id, ts, voltage, current, temperature) into `sensor_readings`."""
    with conn.cursor() as cur, cur.copy(_COPY) as copy:
        for block in blocks:
            copy.write(block)


def register_devices(conn: psycopg.Connection, device_ids: list[str], first: datetime, last: datetime) -> None:
    conn.execute(_DEVICES, (first, last, device_ids))


def history_extent(conn: psycopg.Connection) -> tuple[int, datetime | None]:
    """(devices, latest last_seen) of what an earlier load left."""
    row = conn.execute("SELECT count(*), max(last_seen) FROM devices").fetchone()
    assert row is not None  # an aggregate without GROUP BY always gives one row
    return int(row[0]), row[1]


def vacuum_analyze(conn: psycopg.Connection) -> None:
    """`VACUUM ANALYZE` of the database (`conn` in autocommit)."""
    conn.execute("VACUUM ANALYZE")


def sizes(conn: psycopg.Connection, *, timescale: bool) -> tuple[int, int, int]:
    """Bytes of `sensor_readings` (table with TOAST, indexes) and of both rollups."""
    row = conn.execute(_TIMESCALE_SIZES if timescale else _PLAIN_SIZES).fetchone()
    assert row is not None
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def raw_chart(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, width: timedelta
) -> list[tuple[Any, ...]]:
    """A device's buckets aggregated straight from the raw rows (the path before the rollups)."""
    params = {"width": width, "device": device_id, "start": start, "end": end}
    return conn.execute(_RAW_CHART, params).fetchall()


def compress_all(conn: psycopg.Connection) -> None:
    """Enable compression on `sensor_readings` (segment by device, order by time) and compress
    every chunk (TimescaleDB; `conn` in autocommit)."""
    for statement in _COMPRESS:
        conn.execute(statement)
