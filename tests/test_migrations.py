"""Alembic owns the schema: `alembic upgrade head` from the repository's alembic.ini builds it, and
every migration can be undone and applied again."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql

from gridmon.config import REPO_ROOT
from gridmon.storage.db import ensure_database
from tests.conftest import readings_is_hypertable

EXPECTED_TABLES = {
    "sensor_readings",
    "devices",
    "dead_letters",
    "alerts",
    "alert_outbox",
    "model_versions",
    "scan_state",
    "maintenance_predictions",
    "pipeline_outages",
}


def _fresh(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    assert ensure_database(url)


def _alembic(url: str, *args: str) -> None:
    env = {**os.environ, "GRIDMON_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, env=env, check=True, capture_output=True)


def _at(url: str, revision: str) -> str:
    """A fresh database at `url`, migrated to `revision`."""
    _fresh(url)
    _alembic(url, "upgrade", revision)
    return url


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def _is_hypertable(conn: psycopg.Connection[Any]) -> bool:
    return readings_is_hypertable(conn)


def test_upgrade_downgrade_upgrade(migrated_database: str) -> None:
    url = migrated_database.rsplit("/", 1)[0] + "/" + migrated_database.rsplit("/", 1)[1] + "_migrations"
    _fresh(url)
    _alembic(url, "upgrade", "head")
    assert _tables(url) >= EXPECTED_TABLES
    with psycopg.connect(url) as conn:
        kinds: dict[str, str] = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sensor_readings'").fetchall())
        hypertable = _is_hypertable(conn)
    assert "sensor_readings_pkey" in kinds
    if hypertable:  # TimescaleDB's own index on the time column replaces the BRIN
        assert "sensor_readings_ts_brin" not in kinds and "(ts DESC)" in kinds["sensor_readings_ts_idx"]
    else:
        assert "USING brin (ts)" in kinds["sensor_readings_ts_brin"]
    _alembic(url, "downgrade", "base")
    assert _tables(url) <= {"alembic_version"}
    _alembic(url, "upgrade", "head")
    assert _tables(url) >= EXPECTED_TABLES


def test_one_outbox_migration_keeps_every_row_both_ways(migrated_database: str) -> None:
    url = _at(migrated_database + "_outbox", "0004")
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


def test_hardening_migration_moves_out_of_range_rows_then_checks_ts(migrated_database: str) -> None:
    url = _at(migrated_database + "_hardening", "0006_stream_detector")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature) VALUES"
            " ('dev-a', '0001-01-01T00:00:00+14:00', 230, 4, 35),"
            " ('dev-a', '2026-01-01T00:00:00Z', 231, 4, 35),"
            " ('dev-z', '9999-12-31T23:59:59Z', 232, 4, 35)"
        )
        conn.execute(
            "INSERT INTO devices (device_id, first_seen, last_seen, kind) VALUES"
            " ('dev-a', '0001-01-01T00:00:00+14:00', '2026-01-01T00:00:00Z', NULL),"
            " ('dev-z', '9999-12-31T23:59:59Z', '9999-12-31T23:59:59Z', 'meter')"
        )
        conn.execute(
            "INSERT INTO alerts (device_id, metric, detector, severity, opened_at, last_seen_at) VALUES"
            " ('dev-a', 'voltage', 'safety', 'high', '0001-01-01T00:00:00+14:00', '2026-01-01T00:00:00Z'),"
            " ('dev-a', 'current', 'safety', 'high', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        )
        conn.execute(
            "INSERT INTO dead_letters (topic, payload, reason, detail) VALUES ('grid/sensors/x', %s, 'too_large', 'd')",
            (b"x" * 100_000,),
        )
    _alembic(url, "upgrade", "head")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT device_id, ts FROM sensor_readings").fetchall()
        assert [(d, t.year) for d, t in rows] == [("dev-a", 2026)]
        letters = conn.execute(
            "SELECT topic, reason, payload, payload_size FROM dead_letters ORDER BY id"
        ).fetchall()
        assert [(t, r, s) for t, r, _, s in letters] == [
            ("grid/sensors/x", "too_large", 100_000),
            ("grid/sensors/dev-a", "bad_timestamp", len(letters[1][2])),
            ("grid/sensors/dev-z", "bad_timestamp", len(letters[2][2])),
        ]
        assert len(letters[0][2]) == 8192  # only the prefix is kept
        assert b'"voltage": 230' in bytes(letters[1][2]) or b'"voltage":230' in bytes(letters[1][2])
        seen: dict[str, Any] = dict(conn.execute("SELECT device_id, first_seen FROM devices").fetchall())
        assert seen["dev-a"].year == 2026 and seen["dev-z"].year == 2099  # no readings left: clamped
        assert [r[0] for r in conn.execute("SELECT metric FROM alerts")] == ["current"]
        for stamp in ("0001-01-01T00:00:00+14:00", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"):
            try:
                conn.execute(
                    "INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature)"
                    " VALUES ('dev-b', %s, 1, 1, 1)",
                    (stamp,),
                )
            except psycopg.errors.CheckViolation as exc:
                assert "sensor_readings_ts_range" in str(exc)
            else:
                raise AssertionError(f"{stamp} was stored")
    _alembic(url, "downgrade", "0006_stream_detector")
    _alembic(url, "upgrade", "head")


def _scalar_on(conn: psycopg.Connection) -> Any:
    def scalar(query: str) -> object:
        row = conn.execute(query).fetchone()
        return None if row is None else row[0]

    return scalar


def test_timescaledb_setting_decides_from_what_the_server_can_do(db: psycopg.Connection) -> None:
    """The choice is explicit: `off` never asks; `auto` and `on` agree with the server's own answer."""
    from gridmon.storage.timescale import TimescaleUnavailable, decide

    scalar = _scalar_on(db)
    assert decide("off", scalar).use is False
    installed = scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'") is not None
    preload = str(scalar("SELECT current_setting('shared_preload_libraries')"))
    created = scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'") is not None
    can = created or (installed and "timescaledb" in preload)
    auto = decide("auto", scalar)
    assert auto.use is can
    if can:
        assert decide("on", scalar).use
    else:
        assert "preload" in auto.reason or "not installed" in auto.reason
        try:
            decide("on", scalar)
        except TimescaleUnavailable as exc:
            assert "GRIDMON_TIMESCALEDB" in str(exc)
        else:
            raise AssertionError("on must fail when the server cannot create the extension")


def test_installed_but_not_preloaded_migrates_plain(tmp_path: Any) -> None:
    """A server with the extension's files but without the preload is what a stock package install
    gives: `auto` must migrate it plain (the hypertable path would fail on CREATE EXTENSION)."""
    url = os.environ.get("GRIDMON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/gridmon_test")
    url = url.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1] + "_tsauto"
    _fresh(url)
    with psycopg.connect(url) as conn:
        preload = str(conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0])  # type: ignore[index]
    if "timescaledb" in preload:
        pytest.skip("this server preloads timescaledb: the plain half of `make test` covers this case")
    _alembic(url, "upgrade", "head")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone() == (0,)


def test_pending_step_migration_moves_open_holes_ends_both_ways(migrated_database: str) -> None:
    """0015: an open hole's end gap moves from `reading_gaps` onto the device's row and back; the
    view counts it the same either way; other gaps stay rows."""
    url = _at(migrated_database + "_pending", "0014_seq_hole_end")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, first_seen, last_seen, last_seq, seg_pre_ts, seg_pre_seq,"
            " seg_first_ts, seg_first_seq) VALUES"
            " ('open', '2026-01-01T00:00:00Z', '2026-01-01T00:00:09Z', 9, '2026-01-01T00:00:04Z', 4,"
            "  '2026-01-01T00:00:08Z', 8),"
            " ('closed', '2026-01-01T00:00:00Z', '2026-01-01T00:00:09Z', 9, NULL, 4, '2026-01-01T00:00:08Z', 8)"
        )
        conn.execute(
            "INSERT INTO reading_gaps (device_id, ts, missing) VALUES ('open', '2026-01-01T00:00:08Z', 3),"
            " ('open', '2026-01-01T00:00:03Z', 1), ('closed', '2026-01-01T00:00:08Z', 3)"
        )
    _alembic(url, "upgrade", "head")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT device_id, extract(second FROM ts), missing FROM reading_gaps ORDER BY 1, 2")
        assert [(d, int(s), n) for d, s, n in rows] == [("closed", 8, 3), ("open", 3, 1)]
        pending = conn.execute("SELECT device_id, seg_first_missing FROM devices ORDER BY 1").fetchall()
        assert pending == [("closed", 0), ("open", 3)]
        total = conn.execute("SELECT device_id, sum(missing) FROM reading_gaps_all GROUP BY 1 ORDER BY 1").fetchall()
        assert total == [("closed", 3), ("open", 4)]
    _alembic(url, "downgrade", "0014_seq_hole_end")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT device_id, extract(second FROM ts), missing FROM reading_gaps ORDER BY 1, 2")
        assert [(d, int(s), n) for d, s, n in rows] == [("closed", 8, 3), ("open", 3, 1), ("open", 8, 3)]
