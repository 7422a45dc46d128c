"""The incremental scan against the real database: each reading scored once, late data scored,
in-flight batches not skipped, backlogs worked off in steps, one scan at a time."""

from __future__ import annotations

import psycopg
import pytest

from gridmon.config import get_settings
from gridmon.jobs.scan import run_scan
from tests.alerts_support import alerts, base_time, fresh_alerting, normal_rows, store, with_voltage

__all__ = ["fresh_alerting"]
pytestmark = pytest.mark.usefixtures("fresh_alerting")


def scanned_total(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(sum(readings), 0) FROM scan_state").fetchone()
    return int(row[0]) if row else 0


def test_each_reading_scored_once_across_two_scans(db, redis_client):
    t0 = base_time()
    first = normal_rows("dev-a", t0, 60) + normal_rows("dev-b", t0, 60, seed=1)
    first[30:40] = with_voltage(first[30:40], 262.0)  # ten over-voltage readings on dev-a
    store(first)
    report = run_scan(drain=False)
    assert report.readings == 120
    assert report.findings >= 10

    second = normal_rows("dev-a", t0 + 120, 30, seed=2) + normal_rows("dev-b", t0 + 120, 30, seed=3)
    second[5:8] = with_voltage(second[5:8], 262.0)  # three more, within the gap: same episode
    store(second)
    report = run_scan(drain=False)
    assert report.readings == 60

    assert run_scan(drain=False).readings == 0
    assert scanned_total(db) == 180
    [alert] = alerts(db)
    # Every over-voltage reading counted once, though some were in history for the second scan.
    assert (alert["device_id"], alert["metric"], alert["readings_count"]) == ("dev-a", "voltage", 13)
    assert alert["state"] == "open"


def test_late_reading_is_scored_when_it_arrives(db, redis_client):
    t0 = base_time()
    store(normal_rows("dev-a", t0, 120))
    run_scan(drain=False)
    # A reading stamped 50 minutes before the others, stored only now.
    store([["dev-a", t0 - 3000.0, 275.0, 4.0, 35.0, None]])
    report = run_scan(drain=False)
    assert report.readings == 1
    [alert] = alerts(db)
    assert alert["opened_at"].timestamp() == t0 - 3000.0
    assert alert["value"] == 275.0


def test_batch_in_flight_during_a_scan_is_scored_by_the_next(db, migrated_database):
    t0 = base_time()
    store(normal_rows("dev-a", t0, 10))
    # An ingest transaction that started before the scan and commits after it: its rows carry
    # an ingested_at older than the scan's end.
    with psycopg.connect(migrated_database) as slow:
        slow.execute(
            "INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature) "
            "VALUES ('dev-slow', to_timestamp(%s), 231, 4, 35)",
            (t0,),
        )
        assert run_scan(drain=False).readings == 10
        slow.commit()
    assert run_scan(drain=False).readings == 1
    assert scanned_total(db) == 11


def test_backlog_is_worked_off_in_steps(db, monkeypatch):
    monkeypatch.setattr(get_settings(), "scan_max_rows", 100)
    t0 = base_time()
    for batch in range(5):
        store(normal_rows(f"dev-{batch}", t0, 60))
    report = run_scan(drain=False)
    assert report.readings == 300
    assert report.steps >= 3
    assert 0 < report.largest_step <= 100
    assert scanned_total(db) == 300


def test_second_scan_at_the_same_time_is_busy(db, migrated_database):
    store(normal_rows("dev-a", base_time(), 10))
    run_scan(drain=False)
    with psycopg.connect(migrated_database) as other:
        other.execute("SELECT 1 FROM scan_state WHERE name LIKE 'readings/%' FOR UPDATE")
        report = run_scan(drain=False)
        assert report.status == "busy" and len(report.busy) == get_settings().scan_shards
    assert run_scan(drain=False).status == "ok"


def test_one_busy_shard_does_not_stop_the_others(db, migrated_database):
    shards = get_settings().scan_shards
    rows = [r for k in range(40) for r in normal_rows(f"dev-{k}", base_time(), 5, seed=k)]
    run_scan(drain=False)  # creates the shard rows
    store(rows)
    with psycopg.connect(migrated_database) as other:
        other.execute("SELECT 1 FROM scan_state WHERE name = %s FOR UPDATE", (f"readings/0of{shards}",))
        report = run_scan(drain=False)
        assert report.busy == [0] and report.status == "ok"
    report = run_scan(drain=False)
    assert scanned_total(db) == 200


def test_frames_carry_extra_metrics(db):
    from datetime import UTC, datetime, timedelta

    from gridmon.storage.frames import ingested_between

    t0 = base_time()
    store([["dev-a", t0, 230.0, 4.0, 35.0, {"frequency": 50.01}], ["dev-b", t0, 231.0, 4.1, 36.0, None]])
    now = datetime.now(UTC)
    frame = ingested_between(db, now - timedelta(hours=1), now + timedelta(seconds=1)).sort_values("device_id")
    assert list(frame.columns) == ["device_id", "ts", "voltage", "current", "temperature", "frequency"]
    assert frame["ts"].tolist() == [t0, t0]
    assert frame["frequency"].iloc[0] == 50.01 and frame["frequency"].isna().iloc[1]
