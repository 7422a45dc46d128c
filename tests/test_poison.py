"""No single reading may stop a fleet-wide job (issue 13): poison rows of several kinds in an
ingest batch and in a scan window are set aside with their reason, and every other device's
readings, findings and alerts still come out."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

import gridmon.jobs.scan as scan_job
from gridmon.jobs.ingest import store_batch
from gridmon.jobs.scan import run_scan
from tests.alerts_support import alerts, base_time, fresh_alerting, normal_rows, store, stream_events, with_voltage

__all__ = ["fresh_alerting"]
pytestmark = pytest.mark.usefixtures("fresh_alerting")

YEAR_0 = -62135596800.0 + 10 * 3600  # 0001-01-01T00:00:00+14:00 as epoch seconds


def quarantined(job: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("gridmon_quarantined_readings_total", {"job": job, "reason": reason})
    return value or 0.0


def letters(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute("SELECT topic, reason, detail FROM dead_letters ORDER BY id").fetchall()
    return [(str(t), str(r), str(d)) for t, r, d in rows]


def stored_devices(conn: psycopg.Connection) -> dict[str, int]:
    return {str(d): int(n) for d, n in conn.execute("SELECT device_id, count(*) FROM sensor_readings GROUP BY 1")}


def test_poison_rows_in_a_batch_are_dead_letters_and_the_rest_is_stored_and_alerted(db, redis_client):
    t0 = base_time()
    good = normal_rows("dev-a", t0, 20) + normal_rows("dev-c", t0, 20, seed=1)
    hot = with_voltage(normal_rows("dev-b", t0, 5, seed=2), 262.0)  # over-voltage: a safety alert
    poison: list[Any] = [
        ["dev-p", YEAR_0, 230.0, 4.0, 35.0, None],  # year 0
        ["dev-p", 253402300799.0, 230.0, 4.0, 35.0, None],  # year 9999 in seconds
        ["dev-p", t0 + 1, math.nan, 4.0, 35.0, None],
        ["dev-p", t0 + 2, 230.0, math.inf, 35.0, None],
        ["dev-p", "yesterday", 230.0, 4.0, 35.0, None],
        ["dev-p", t0 + 2.5, "230", 4.0, 35.0, None],
        ["dev-p", t0 + 3, 230.0, 4.0],  # not a row
        ["..", t0 + 4, 230.0, 4.0, 35.0, None],
        ["dev-p", t0 + 5, 230.0, 4.0, 35.0, {"bad\x00key": 1.0}],  # passes the screen; jsonb refuses it
    ]
    before = quarantined("ingest", "bad_timestamp")
    batch = good[:10] + poison[:4] + hot + poison[4:] + good[10:]
    report = store_batch(batch)

    assert stored_devices(db) == {"dev-a": 20, "dev-c": 20, "dev-b": 5}
    assert report.inserted == 45 and report.refused
    reasons = sorted(reason for _, reason, _ in letters(db))
    assert reasons == sorted(
        ["bad_timestamp"] * 3 + ["non_finite"] * 2 + ["non_numeric", "not_object", "bad_device_id", "ingest_refused"]
    )
    assert quarantined("ingest", "bad_timestamp") == before + 3
    # The over-voltage device's alert came out of the same batch.
    assert report.alert_events >= 1
    [alert] = alerts(db)
    assert (alert["device_id"], alert["metric"]) == ("dev-b", "voltage")


def test_batch_of_only_good_rows_takes_the_fast_path(db, redis_client):
    report = store_batch(normal_rows("dev-a", base_time(), 50))
    assert (report.inserted, report.dead_letters, report.refused) == (50, 0, False)


@pytest.fixture()
def without_ts_check(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The table as it was before migration 0007 (no CHECK on ts), restored afterwards."""
    db.execute("ALTER TABLE sensor_readings DROP CONSTRAINT IF EXISTS sensor_readings_ts_range")
    db.execute("ALTER TABLE devices DROP CONSTRAINT IF EXISTS devices_seen_range")
    try:
        yield db
    finally:
        db.execute("DELETE FROM sensor_readings WHERE ts < '2000-01-01' OR ts >= '2100-01-01'")
        db.execute("DELETE FROM devices WHERE first_seen < '2000-01-01' OR last_seen >= '2100-01-01'")
        db.execute(
            "ALTER TABLE sensor_readings ADD CONSTRAINT sensor_readings_ts_range"
            " CHECK (ts >= '2000-01-01 00:00:00+00' AND ts < '2100-01-01 00:00:00+00')"
        )
        db.execute(
            "ALTER TABLE devices ADD CONSTRAINT devices_seen_range CHECK (first_seen >= '2000-01-01 00:00:00+00'"
            " AND first_seen < '2100-01-01 00:00:00+00' AND last_seen >= '2000-01-01 00:00:00+00'"
            " AND last_seen < '2100-01-01 00:00:00+00')"
        )


def _bomb_detector(monkeypatch: pytest.MonkeyPatch, failing: set[str]) -> None:
    """Scoring that raises for the devices in `failing` (a detector fault that only one device's
    data triggers); the real streaming detector for every other device."""
    real = scan_job.score_rows

    def score_rows(state: Any, batch: Any, **kwargs: Any) -> Any:
        if batch.device_id in failing:
            raise ValueError(f"cannot score {batch.device_id!r}")
        return real(state, batch, **kwargs)

    monkeypatch.setattr(scan_job, "score_rows", score_rows)


def test_poison_rows_in_a_scan_window_are_set_aside_and_every_other_device_alerts(
    without_ts_check: psycopg.Connection, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = without_ts_check
    t0 = base_time()
    hot = normal_rows("dev-b", t0, 60, seed=2)
    hot[30:40] = with_voltage(hot[30:40], 262.0)
    store(normal_rows("dev-a", t0, 60) + hot + normal_rows("dev-bomb", t0, 30, seed=4))
    for row in (
        ("dev-p", YEAR_0, 230.0, 4.0, 35.0),  # what broke every scan
        ("dev-p", t0 + 1.5, math.nan, 4.0, 35.0),
        ("dev-p", t0 + 2.5, 230.0, math.inf, 35.0),
        ("dev-q", t0 + 3.5, -5.0, 4.0, 35.0),  # physically impossible
    ):  # as a path without the checks would have stored them
        db.execute(
            "INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature)"
            " VALUES (%s, to_timestamp(%s), %s, %s, %s)",
            row,
        )
    _bomb_detector(monkeypatch, {"dev-bomb"})
    before = quarantined("scan", "scan_failed")

    report = run_scan(now=t0 + 130)

    assert report.status == "ok", report.error
    assert report.quarantined == {"bad_timestamp": 1, "non_finite": 2, "out_of_physical_range": 1, "scan_failed": 30}
    assert report.failed_devices == ["dev-bomb"]
    assert quarantined("scan", "scan_failed") == before + 30
    assert stored_devices(db) == {"dev-a": 60, "dev-b": 60}
    by_reason: dict[str, set[str]] = {}
    for topic, reason, detail in letters(db):
        by_reason.setdefault(reason, set()).add(topic)
        assert detail.startswith("scan:")
    assert by_reason == {
        "bad_timestamp": {"grid/sensors/dev-p"},
        "non_finite": {"grid/sensors/dev-p"},
        "out_of_physical_range": {"grid/sensors/dev-q"},
        "scan_failed": {"grid/sensors/dev-bomb"},
    }
    [alert] = [a for a in alerts(db) if a["metric"] == "voltage"]
    assert alert["device_id"] == "dev-b"
    assert any(e["device_id"] == "dev-b" and e["event"] == "opened" for e in stream_events(redis_client))
    # The watermark moved: the next scan has nothing left to score.
    assert run_scan(now=t0 + 131).readings == 0


def test_a_moved_reading_replays_once_fixed(db, redis_client, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridmon.domain.readings import Reading, parse_reading

    t0 = base_time()
    store(normal_rows("dev-bomb", t0, 3))
    _bomb_detector(monkeypatch, {"dev-bomb"})
    run_scan(now=t0 + 10, drain=False)
    topic, payload = db.execute("SELECT topic, payload FROM dead_letters ORDER BY id LIMIT 1").fetchone()
    replayed = parse_reading(topic, bytes(payload), t0 + 10)
    assert isinstance(replayed, Reading) and replayed.device_id == "dev-bomb" and replayed.ts == t0


def test_when_every_device_fails_the_step_fails_but_stale_checks_and_publishing_go_on(db, redis_client, monkeypatch):
    from gridmon.config import get_settings

    monkeypatch.setattr(get_settings(), "scan_shards", 1)  # both devices in one step
    t0 = base_time()
    store(normal_rows("dev-a", t0, 30) + normal_rows("dev-c", t0, 30, seed=1))
    _bomb_detector(monkeypatch, {"dev-a", "dev-c"})
    report = run_scan(now=t0 + 60 + 3600)
    assert report.status == "failed" and "all 2 devices" in (report.error or "")
    # Nothing was moved: a detector fault is not a poison reading.
    assert stored_devices(db) == {"dev-a": 30, "dev-c": 30} and letters(db) == []
    # The step was rolled back whole: no reading counted as scanned, the watermark did not move.
    assert (db.execute("SELECT readings FROM scan_state").fetchone() or (0,)) == (0,)
    # The stale check still ran after the failed step: both devices went silent an hour ago.
    assert {a["device_id"] for a in alerts(db, stale=True) if a["metric"] == "no_data"} == {"dev-a", "dev-c"}
    # and published: the housekeeping drained the outbox to Redis after the failed step
    opened = {(e["device_id"], e["metric"]) for e in stream_events(redis_client) if e["event"] == "opened"}
    assert {("dev-a", "no_data"), ("dev-c", "no_data")} <= opened
