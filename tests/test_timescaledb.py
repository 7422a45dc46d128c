"""TimescaleDB features the migrations set up: the hypertable, compression, late readings, retention.

Runs on the TimescaleDB half of `make test` (GRIDMON_TEST_DATABASE_URL on a server with the
extension preloaded); on plain PostgreSQL every test here is skipped with the reason. The policies'
jobs are run by hand (`CALL run_job(id)`) instead of waiting for TimescaleDB's scheduler.

The session database is migrated with the default settings (compression after
GRIDMON_TIMESCALE_COMPRESS_AFTER = 7 days, no retention); the retention test migrates a database
of its own with GRIDMON_TIMESCALE_RETENTION set, the way an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from gridmon.config import REPO_ROOT, get_settings
from gridmon.domain.units import DAY_S
from gridmon.jobs.ingest import store_batch
from gridmon.storage.db import ensure_database
from gridmon.storage.readings import write_readings
from tests.alerts_support import normal_rows
from tests.conftest import readings_is_hypertable


@pytest.fixture(scope="module", autouse=True)
def _timescaledb_only(migrated_database: str) -> None:
    with psycopg.connect(migrated_database) as conn:
        if not readings_is_hypertable(conn):
            pytest.skip(
                "sensor_readings is a plain table here: these tests need a server with TimescaleDB preloaded "
                "(the TimescaleDB half of `make test`, .ci/timescaledb-cluster)"
            )


def _job(conn: psycopg.Connection, proc: str) -> tuple[int, dict[str, Any]]:
    """The id and config of the policy job `proc` (policy_compression, policy_retention) on sensor_readings."""
    row = conn.execute(
        "SELECT job_id, config FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'sensor_readings' AND proc_name = %s",
        (proc,),
    ).fetchone()
    assert row is not None, f"no {proc} job on sensor_readings"
    return row[0], row[1]


def _chunks(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    """(chunk name, compressed) for each chunk of sensor_readings, oldest first."""
    rows = conn.execute(
        "SELECT chunk_name, is_compressed FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'sensor_readings' ORDER BY range_start"
    ).fetchall()
    return [(name, compressed) for name, compressed in rows]


def _interval(conn: psycopg.Connection, text: str) -> timedelta:
    value = conn.execute("SELECT CAST(%s AS interval)", (text,)).fetchone()
    assert value is not None
    return value[0]


def test_migration_makes_a_hypertable_with_the_configured_compression_policy(db: psycopg.Connection) -> None:
    settings = get_settings()
    row = db.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = 'sensor_readings'"
    ).fetchone()
    assert row == (True,)
    dimension = db.execute(
        "SELECT column_name, time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'sensor_readings'"
    ).fetchall()
    assert dimension == [("ts", _interval(db, settings.timescale_chunk_interval))]
    segment_by = db.execute(
        "SELECT attname FROM timescaledb_information.compression_settings"
        " WHERE hypertable_name = 'sensor_readings' AND segmentby_column_index IS NOT NULL"
    ).fetchall()
    assert segment_by == [("device_id",)]
    assert settings.timescale_compress_after
    _, config = _job(db, "policy_compression")
    assert _interval(db, config["compress_after"]) == _interval(db, settings.timescale_compress_after)


def test_compression_job_compresses_only_chunks_older_than_the_setting(db: psycopg.Connection) -> None:
    now = time.time()
    old = normal_rows("dev-old", now - 10 * DAY_S, 300, step=60.0)  # 5 h, 10 days ago
    recent = normal_rows("dev-new", now - 3600.0, 300, step=10.0)
    for rows in (old, recent):
        assert store_batch(rows).inserted == len(rows)
    assert not any(compressed for _, compressed in _chunks(db))
    job_id, _ = _job(db, "policy_compression")
    db.execute("CALL run_job(%s)", (job_id,))
    chunks = dict(_chunks(db))
    old_chunks = db.execute(
        "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'sensor_readings'"
        " AND range_end <= now() - CAST(%s AS interval)",
        (get_settings().timescale_compress_after,),
    ).fetchall()
    assert old_chunks, "the old readings should lie in chunks past the compression age"
    assert all(chunks[name] for (name,) in old_chunks)
    assert not all(chunks.values()), "the chunk of the last hour must stay uncompressed"
    stats = db.execute(
        "SELECT count(*) FILTER (WHERE compression_status = 'Compressed'),"
        " sum(before_compression_total_bytes), sum(after_compression_total_bytes)"
        " FROM chunk_compression_stats('sensor_readings')"
    ).fetchone()
    assert stats is not None
    assert stats[0] == len(old_chunks) and stats[1] > 0 and stats[2] > 0
    # Compressed rows still read back whole.
    count = db.execute("SELECT count(*), min(voltage) > 200 FROM sensor_readings WHERE device_id = 'dev-old'")
    assert count.fetchone() == (len(old), True)


def test_a_late_reading_into_a_compressed_chunk_is_ingested_once(db: psycopg.Connection) -> None:
    now = time.time()
    old = normal_rows("dev-late", now - 10 * DAY_S, 100, step=60.0)
    store_batch(old[::2])  # every other minute; the gaps arrive late
    job_id, _ = _job(db, "policy_compression")
    db.execute("CALL run_job(%s)", (job_id,))
    assert any(compressed for _, compressed in _chunks(db))

    late = old[1::2]
    report = store_batch(late)
    assert (report.inserted, report.duplicates) == (len(late), 0)
    again = store_batch([old[0], old[1]])  # a redelivered batch: both already stored
    assert (again.inserted, again.duplicates) == (0, 2)
    count = db.execute("SELECT count(*), count(DISTINCT ts) FROM sensor_readings WHERE device_id = 'dev-late'")
    assert count.fetchone() == (len(old), len(old))
    last_seen = db.execute("SELECT last_seen FROM devices WHERE device_id = 'dev-late'").fetchone()
    assert last_seen is not None and abs(last_seen[0].timestamp() - old[-1][1]) < 1e-3


def _alembic_upgrade(url: str, **settings: str) -> None:
    env = {**os.environ, "GRIDMON_DATABASE_URL": url, "GRIDMON_TIMESCALEDB": "on", **settings}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    )


@pytest.fixture()
def retention_database(migrated_database: str) -> Iterator[str]:
    """A database of its own migrated with GRIDMON_TIMESCALE_RETENTION = 30 days."""
    url = migrated_database + "_retention"
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    assert ensure_database(url)
    _alembic_upgrade(url, GRIDMON_TIMESCALE_RETENTION="30 days", GRIDMON_TIMESCALE_COMPRESS_AFTER="7 days")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_retention_job_drops_raw_chunks_older_than_the_setting(retention_database: str) -> None:
    now = time.time()
    ancient = normal_rows("dev-a", now - 45 * DAY_S, 120, step=60.0)
    kept = normal_rows("dev-a", now - 20 * DAY_S, 120, step=60.0)
    recent = normal_rows("dev-a", now - 3600.0, 120, step=10.0)
    with psycopg.connect(retention_database, autocommit=True) as conn:
        with conn.transaction():
            write_readings(conn, ancient + kept + recent)
        compression_id, _ = _job(conn, "policy_compression")
        conn.execute("CALL run_job(%s)", (compression_id,))  # the 20-day-old chunk is compressed, still kept
        retention_id, config = _job(conn, "policy_retention")
        assert _interval(conn, config["drop_after"]) == timedelta(days=30)
        before = len(_chunks(conn))
        conn.execute("CALL run_job(%s)", (retention_id,))
        after = _chunks(conn)
        row = conn.execute("SELECT min(ts), count(*) FROM sensor_readings").fetchone()
    assert row is not None
    oldest, count = row
    assert count == len(kept) + len(recent)
    assert abs(oldest.timestamp() - kept[0][1]) < 1e-3
    assert len(after) < before
    assert any(compressed for _, compressed in after), "the compressed 20-day-old chunk is kept"
