"""Alembic owns the schema: `alembic upgrade head` from the repository's alembic.ini builds it, and
every migration can be undone and applied again."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
from psycopg import sql

from gridmon.config import REPO_ROOT
from gridmon.storage.db import ensure_database

EXPECTED_TABLES = {
    "sensor_readings",
    "devices",
    "dead_letters",
    "alerts",
    "alert_outbox",
    "model_versions",
    "scan_state",
    "maintenance_predictions",
}


def _fresh(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    assert ensure_database(url)


def _alembic(url: str, *args: str) -> None:
    env = {**os.environ, "GRIDMON_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, env=env, check=True, capture_output=True)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_upgrade_downgrade_upgrade(migrated_database: str) -> None:
    url = migrated_database.rsplit("/", 1)[0] + "/" + migrated_database.rsplit("/", 1)[1] + "_migrations"
    _fresh(url)
    _alembic(url, "upgrade", "head")
    assert _tables(url) >= EXPECTED_TABLES
    with psycopg.connect(url) as conn:
        kinds: dict[str, str] = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sensor_readings'").fetchall())
    assert "sensor_readings_pkey" in kinds and "USING brin (ts)" in kinds["sensor_readings_ts_brin"]
    _alembic(url, "downgrade", "base")
    assert _tables(url) <= {"alembic_version"}
    _alembic(url, "upgrade", "head")
    assert _tables(url) >= EXPECTED_TABLES
