"""The processes run as a least-privilege database role (issue 13): rows yes, schema no. The role
is made by `gridmon db app-role` as the owner; on the local server's trust authentication it needs
no password."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner

from gridmon.cli.database import db as db_cli
from gridmon.config import get_settings
from gridmon.jobs.ingest import store_batch
from gridmon.jobs.scan import run_scan
from gridmon.storage import db as storage_db
from gridmon.storage.roles import drop_app_role
from tests.alerts_support import base_time, fresh_alerting, normal_rows, with_voltage

__all__ = ["fresh_alerting"]


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    return urlunsplit((parts.scheme, f"{role}@{host}:{parts.port or 5432}", parts.path, "", ""))


@pytest.fixture()
def app_role(db: psycopg.Connection, migrated_database: str) -> Iterator[str]:
    role = f"gridmon_app_t{os.getpid()}"
    result = CliRunner().invoke(db_cli, ["app-role", role])
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    try:
        yield role
    finally:
        storage_db.dispose_engine()
        with psycopg.connect(migrated_database, autocommit=True) as owner:
            drop_app_role(owner, role)


@pytest.mark.usefixtures("fresh_alerting")
def test_jobs_and_api_reads_work_as_the_app_role(
    app_role: str, migrated_database: str, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "database_url", as_role(migrated_database, app_role))
    storage_db.dispose_engine()
    t0 = base_time()
    rows = normal_rows("dev-a", t0, 40)
    rows[20:25] = with_voltage(rows[20:25], 262.0)
    report = store_batch([*rows, ["dev-a", 253402300799.0, 230.0, 4.0, 35.0, None]])
    assert (report.inserted, report.dead_letters) == (40, 1)
    assert report.alert_events >= 1  # alerts and outbox written as the role
    scan = run_scan(drain=False)
    assert scan.status == "ok" and scan.readings == 40
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (app_role,)
        assert conn.execute("SELECT count(*) FROM alerts WHERE metric = 'voltage'").fetchone() == (1,)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (x int)",
        "DROP TABLE sensor_readings",
        "ALTER TABLE sensor_readings DROP CONSTRAINT sensor_readings_ts_range",
        "TRUNCATE dead_letters",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE ROLE another",
    ],
)
def test_the_app_role_cannot_change_the_schema(app_role: str, migrated_database: str, statement: str) -> None:
    with psycopg.connect(as_role(migrated_database, app_role)) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_migrations_refuse_to_run_as_the_app_role(app_role: str, migrated_database: str) -> None:
    # The owner's URL is what `gridmon migrate` uses; given the app role, it cannot even stamp.
    with psycopg.connect(as_role(migrated_database, app_role)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE INDEX nope ON sensor_readings (voltage)")


def test_migrate_uses_the_owner_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridmon.config import Settings

    settings = Settings.model_validate(
        {"database_url": "postgresql://app@h/gridmon", "database_owner_url": "postgres://owner@h/gridmon"}
    )
    assert settings.owner_url == "postgresql://owner@h/gridmon"
    assert Settings.model_validate({"database_url": "postgresql://app@h/g", "database_owner_url": ""}).owner_url == (
        "postgresql://app@h/g"
    )
