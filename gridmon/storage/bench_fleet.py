"""Statements of the fleet benchmark (`gridmon.bench.fleet`): resetting its private database and
reading what the scan lag and the CPU accounting need. The benchmark's database only."""

from __future__ import annotations

from datetime import datetime

import psycopg

from gridmon.domain.shards import BUCKETS


def reset_fleet_tables(conn: psycopg.Connection) -> None:
    """Empty readings, devices, scan state, detector states, alerts, predictions and the outbox."""
    conn.execute(
        "TRUNCATE sensor_readings, devices, dead_letters, detector_state, scan_state, alerts, "
        "maintenance_predictions, alert_outbox CASCADE"
    )


def watermarks(conn: psycopg.Connection, prefix: str) -> tuple[datetime, dict[str, datetime]]:
    """(database clock now, watermark of every scan_state row named `prefix/…`)."""
    rows = conn.execute(
        "SELECT clock_timestamp(), name, watermark FROM scan_state WHERE name LIKE %s",
        (prefix + "/%",),
    ).fetchall()
    if not rows:
        now = conn.execute("SELECT clock_timestamp()").fetchone()
        assert now is not None
        return now[0], {}
    return rows[0][0], {name: mark for _, name, mark in rows}


def ingested_histogram(
    conn: psycopg.Connection, shards: int, resolution_s: float
) -> list[tuple[int, float, float, int]]:
    """Readings grouped by (scan shard, `ingested_at` slot of `resolution_s`): rows of
    (shard, slot start epoch s, newest `ingested_at` in the slot epoch s, count)."""
    rows = conn.execute(
        f"""SELECT ((gridmon_bucket(device_id) + 1) * %(shards)s - 1) / {BUCKETS} AS shard,
                   floor(extract(epoch FROM ingested_at) / %(res)s) * %(res)s AS slot,
                   extract(epoch FROM max(ingested_at)) AS newest,
                   count(*)
            FROM sensor_readings GROUP BY 1, 2 ORDER BY 1, 2""",
        {"shards": shards, "res": resolution_s},
    ).fetchall()
    return [(int(s), float(slot), float(newest), int(n)) for s, slot, newest, n in rows]


def newest_ingested(conn: psycopg.Connection) -> datetime | None:
    """The newest `ingested_at` stored (None when empty)."""
    row = conn.execute("SELECT max(ingested_at) FROM sensor_readings").fetchone()
    return row[0] if row else None


def scanned_total(conn: psycopg.Connection, prefix: str) -> int:
    """Readings counted by every scan shard row named `prefix/…`."""
    row = conn.execute(
        "SELECT coalesce(sum(readings), 0) FROM scan_state WHERE name LIKE %s", (prefix + "/%",)
    ).fetchone()
    return int(row[0]) if row else 0


def backend_pids(conn: psycopg.Connection) -> list[int]:
    """Server processes connected to this database (the benchmark's CPU accounting)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return [int(r[0]) for r in rows]


def alert_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM alerts").fetchone()
    return int(row[0]) if row else 0


def predicted_devices(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(DISTINCT device_id) FROM maintenance_predictions").fetchone()
    return int(row[0]) if row else 0


def prediction_rows(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM maintenance_predictions").fetchone()
    return int(row[0]) if row else 0
