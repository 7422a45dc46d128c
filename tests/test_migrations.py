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


def test_one_outbox_migration_keeps_every_row_both_ways(migrated_database: str) -> None:
    url = migrated_database + "_outbox"
    _fresh(url)
    _alembic(url, "upgrade", "0004")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alerts (device_id, metric, detector, severity, opened_at, last_seen_at)"
            " VALUES ('dev-a', 'voltage', 'safety', 'high', now(), now())"
        )
        conn.execute(
            "INSERT INTO alert_outbox (alert_id, event, payload, published_at) VALUES"
            " (1, 'opened', '{\"device_id\": \"dev-a\"}', now()), (1, 'resolved', '{\"device_id\": \"dev-a\"}', NULL)"
        )
        conn.execute(
            "INSERT INTO maintenance_predictions (device_id, computed_at, confidence, risk_score, risk_level)"
            " VALUES ('dev-m', now(), 0.5, 80, 'critical')"
        )
        conn.execute(
            "INSERT INTO maintenance_outbox (device_id, prediction_id, payload, sent_at) VALUES"
            " ('dev-m', 1, '{\"risk_level\": \"critical\"}', NULL), ('dev-m', 1, '{\"risk_level\": \"high\"}', now())"
        )
    _alembic(url, "upgrade", "head")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT topic, device_id, alert_id, prediction_id, event, payload, published_at IS NOT NULL"
            " FROM alert_outbox ORDER BY id"
        ).fetchall()
    assert rows == [
        ("anomalies", "dev-a", 1, None, "opened", {"device_id": "dev-a"}, True),
        ("anomalies", "dev-a", 1, None, "resolved", {"device_id": "dev-a"}, False),
        ("maintenance", "dev-m", None, 1, "risk_changed", {"risk_level": "critical"}, False),
        ("maintenance", "dev-m", None, 1, "risk_changed", {"risk_level": "high"}, True),
    ]
    assert "maintenance_outbox" not in _tables(url)
    _alembic(url, "downgrade", "0004")
    with psycopg.connect(url) as conn:
        alert_rows = conn.execute("SELECT alert_id, event, published_at IS NOT NULL FROM alert_outbox ORDER BY id")
        assert alert_rows.fetchall() == [(1, "opened", True), (1, "resolved", False)]
        maintenance_rows = conn.execute(
            "SELECT device_id, prediction_id, payload, sent_at IS NOT NULL FROM maintenance_outbox ORDER BY id"
        ).fetchall()
    assert maintenance_rows == [
        ("dev-m", 1, {"risk_level": "critical"}, False),
        ("dev-m", 1, {"risk_level": "high"}, True),
    ]
