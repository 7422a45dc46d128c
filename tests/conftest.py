"""Test fixtures against the real services.

Tests use their own database (GRIDMON_TEST_DATABASE_URL, default `gridmon_test` on the local
server) and their own Redis database number (GRIDMON_TEST_REDIS_URL, default db 15), so a running
gridmon on the same machine is not disturbed. The environment is set here, before any gridmon
module reads settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

TEST_DB_URL = os.environ.get("GRIDMON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/gridmon_test")
TEST_REDIS_URL = os.environ.get("GRIDMON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Set by `make test` for its TimescaleDB half: the session fails unless the migrated readings table
# really is a hypertable, so that half cannot pass on a plain database.
EXPECT_TIMESCALEDB = os.environ.get("GRIDMON_TEST_EXPECT_TIMESCALEDB", "") == "1"

os.environ["GRIDMON_DATABASE_URL"] = TEST_DB_URL
os.environ["GRIDMON_REDIS_URL"] = TEST_REDIS_URL
os.environ.setdefault("GRIDMON_BROKER_URL", TEST_REDIS_URL)
os.environ["GRIDMON_BRIDGE_METRICS_PORT"] = "0"
os.environ["GRIDMON_WORKER_METRICS_PORT"] = "0"
os.environ.setdefault("GRIDMON_DATA_DIR", "/tmp/gridmon-test-data")
for legacy in ("DB_DSN", "REDIS_URL", "BROKER_HOST", "BROKER_PORT"):
    os.environ.pop(legacy, None)

import psycopg  # noqa: E402
import redis  # noqa: E402
from psycopg import sql  # noqa: E402

from gridmon.config import get_settings  # noqa: E402

get_settings.cache_clear()

# Tables emptied before each test that asks for `db` (those that exist; later migrations add more).
_DATA_TABLES = ("sensor_readings", "devices", "dead_letters")


def _admin_url(url: str) -> str:
    base, _, _ = url.rpartition("/")
    return base + "/postgres"


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """A freshly created test database, migrated to the latest schema (once per session)."""
    from gridmon.storage.db import dispose_engine, migrate

    name = TEST_DB_URL.rsplit("/", 1)[1]
    with psycopg.connect(_admin_url(TEST_DB_URL), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    dispose_engine()
    migrate(TEST_DB_URL)
    with psycopg.connect(TEST_DB_URL, autocommit=True) as conn:
        if _continuous_aggregates(conn):
            # The refresh policies would materialize in the background while tests read: a test
            # materializes when it means to (`gridmon.storage.rollups.materialize`).
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_refresh_continuous_aggregate'"
            )
    return TEST_DB_URL


def readings_is_hypertable(conn: psycopg.Connection) -> bool:
    """Whether the test database's sensor_readings is a TimescaleDB hypertable."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return False
    found = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'sensor_readings'"
    ).fetchone()
    return found is not None


@pytest.fixture(scope="session", autouse=True)
def timescaledb_half(request: pytest.FixtureRequest) -> None:
    """On the TimescaleDB half (GRIDMON_TEST_EXPECT_TIMESCALEDB=1) every test needs the hypertable."""
    if not EXPECT_TIMESCALEDB:
        return
    url: str = request.getfixturevalue("migrated_database")
    with psycopg.connect(url) as conn:
        if not readings_is_hypertable(conn):
            pytest.fail(
                f"GRIDMON_TEST_EXPECT_TIMESCALEDB=1 but sensor_readings is not a hypertable in {url}", pytrace=False
            )


def _continuous_aggregates(conn: psycopg.Connection) -> list[str]:
    """The continuous aggregates in `public` (none without TimescaleDB)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return []
    rows = conn.execute(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public'"
    ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture()
def db(migrated_database: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the emptied test database."""
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        existing = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        keep = set(_DATA_TABLES) | set(existing)
        tables = sorted(keep & set(existing))
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
            )
        # Emptying the readings leaves a continuous aggregate's materialized rows and watermark;
        # truncating the aggregate clears both (back to all real-time, like a fresh database).
        views = _continuous_aggregates(conn)
        if views:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, views))))
        yield conn


@pytest.fixture()
def redis_client() -> Iterator[redis.Redis]:
    """The test Redis database, emptied."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.close()
