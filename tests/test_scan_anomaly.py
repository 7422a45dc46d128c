"""Anomaly alerts from the sharded scan with stored detector state, against the real database.

The live path (readings in the table → scans → alerts) must report exactly what the detector
reports when the same readings are scored in one call (what `gridmon eval` does).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest

from gridmon.config import get_settings
from gridmon.detection.stream.device import score_batch
from gridmon.detection.stream.state import DeviceState
from gridmon.jobs.publish import get_publisher
from gridmon.jobs.scan import detector_params, run_scan
from gridmon.storage.alerts import resolve
from tests.alerts_support import alerts, base_time, fresh_alerting, store, stream_events

__all__ = ["fresh_alerting"]
pytestmark = pytest.mark.usefixtures("fresh_alerting")

N = 900


def fault_rows(device: str, t0: float, *, seed: int, both: bool = False) -> list[list[object]]:
    """900 readings every 2 s; temperature (and with `both`, current) 8 σ high for readings
    600–659, all inside the safety limits."""
    rng = np.random.default_rng(seed)
    v = 230.0 + rng.normal(0, 1.0, N)
    i = 4.0 + rng.normal(0, 0.1, N)
    t = 35.0 + rng.normal(0, 0.5, N)
    t[600:660] += 4.0
    if both:
        i[600:660] += 0.8
    return [[device, t0 + 2.0 * k, float(v[k]), float(i[k]), float(t[k]), None] for k in range(N)]


def offline_runs(rows: list[list[object]]):
    frame = pd.DataFrame([r[1:5] for r in rows], columns=["ts", "voltage", "current", "temperature"]).assign(
        device_id=rows[0][0]
    )
    _, result = score_batch(DeviceState.new(["voltage", "current", "temperature"]), frame, params=detector_params())
    return result.runs


def anomaly_alerts(conn: psycopg.Connection) -> list[dict]:
    return [a for a in alerts(conn) if a["kind"] == "anomaly"]


def test_live_alert_equals_what_one_pass_reports(db, redis_client):
    t0 = base_time() - 3600
    rows = fault_rows("dev-x", t0, seed=1)
    [expected] = offline_runs(rows)
    for start in range(0, N, 150):  # six ingest batches, a scan after each
        store(rows[start : start + 150])
        run_scan(now=t0 + 2 * N, drain=False)
    [alert] = anomaly_alerts(db)
    assert alert["opened_at"].timestamp() == expected.start
    assert alert["last_seen_at"].timestamp() == expected.end
    assert alert["readings_count"] == expected.readings
    assert (alert["state"], alert["resolved_reason"]) == ("resolved", "normal")
    assert alert["metric"] == "temperature" and alert["metrics"] == ["temperature"]
    assert alert["band_lo"] < 35.0 < alert["band_hi"] and abs(alert["expected"] - 35.0) < 0.5
    assert "temperature" in alert["description"] and "expected" in alert["description"]
    # and what the scans recorded goes out to Redis: the alert's opening, then its end
    assert [e["event"] for e in stream_events(redis_client) if e.get("kind") == "anomaly"] == []  # not drained yet
    get_publisher().drain()
    events = [e for e in stream_events(redis_client) if e.get("kind") == "anomaly"]
    assert [e["event"] for e in events] == ["opened", "resolved"]
    assert {(e["episode_id"], e["device_id"], e["opened_at"]) for e in events} == {
        (alert["id"], "dev-x", expected.start)
    }


def test_one_fault_on_two_metrics_is_one_alert_listing_both(db, redis_client):
    t0 = base_time() - 3600
    store(fault_rows("dev-y", t0, seed=2, both=True))
    run_scan(now=t0 + 2 * N, drain=False)
    [alert] = anomaly_alerts(db)
    assert sorted(alert["metrics"]) == ["current", "temperature"]
    assert "also" in alert["description"]


def test_state_carries_across_scans_and_is_stored(db, redis_client):
    t0 = base_time() - 3600
    rows = fault_rows("dev-z", t0, seed=3)
    store(rows[:400])
    run_scan(now=t0 + 2 * N, drain=False)
    stored = db.execute("SELECT readings FROM detector_state WHERE device_id = 'dev-z'").fetchone()
    assert stored == (400,)
    store(rows[400:])
    report = run_scan(now=t0 + 2 * N, drain=False)
    assert report.readings == N - 400  # only the new readings were read
    assert db.execute("SELECT readings FROM detector_state WHERE device_id = 'dev-z'").fetchone() == (N,)
    assert len(anomaly_alerts(db)) == 1


def test_operator_resolved_alert_of_a_continuing_fault_opens_a_new_one(db, redis_client):
    t0 = base_time() - 3600
    rows = fault_rows("dev-w", t0, seed=4)
    store(rows[:630])  # the fault is under way at the end of this batch
    run_scan(now=t0 + 2 * N, drain=False)
    [first] = anomaly_alerts(db)
    assert first["state"] == "open"
    resolve(db, first["id"])
    store(rows[630:])
    run_scan(now=t0 + 2 * N, drain=False)
    first_again, second = anomaly_alerts(db)
    assert first_again["resolved_reason"] == "operator"
    assert second["state"] == "resolved" and second["resolved_reason"] == "normal"
    assert second["opened_at"] > first["opened_at"]


def test_shards_split_the_devices_and_score_each_reading_once(db, redis_client, monkeypatch):
    monkeypatch.setattr(get_settings(), "scan_shards", 4)
    t0 = base_time()
    rows = [r for k in range(30) for r in fault_rows(f"dev-{k}", t0, seed=k)[:20]]
    store(rows)
    total = sum(run_scan(shard=s, drain=False).readings for s in range(4))
    assert total == len(rows)
    assert sum(run_scan(shard=s, drain=False).readings for s in range(4)) == 0
    names = {r[0] for r in db.execute("SELECT name FROM scan_state")}
    assert {f"readings/{s}of4" for s in range(4)} <= names


def test_band_route_draws_the_detectors_expectation(db, redis_client):
    from fastapi.testclient import TestClient

    from gridmon.api.app import create_app

    t0 = base_time() - 3600
    store(fault_rows("dev-b", t0, seed=6))
    client = TestClient(create_app())
    unscored = client.get("/devices/dev-b/band")
    assert unscored.status_code == 200 and unscored.json()["scored"] is False  # not scanned yet
    assert unscored.json()["metrics"] == []
    run_scan(now=t0 + 2 * N, drain=False)
    body = client.get("/devices/dev-b/band", params={"points": 10}).json()
    assert body["scored"] is True and len(body["ts"]) == 10
    by_metric = {m["metric"]: m for m in body["metrics"]}
    temperature = by_metric["temperature"]
    assert all(lo < 35.0 < hi for lo, hi in zip(temperature["low"], temperature["high"], strict=True))
    assert by_metric["voltage"]["expected"][0] == pytest.approx(230.0, abs=0.5)


def test_resharding_scores_every_reading_exactly_once(db, redis_client, monkeypatch):
    from gridmon.jobs.scan import reshard

    settings = get_settings()
    monkeypatch.setattr(settings, "scan_shards", 3)
    t0 = base_time()
    first = [r for k in range(20) for r in fault_rows(f"dev-{k}", t0, seed=k)[:10]]
    store(first)
    run_scan(shard=1, drain=False)  # one shard ahead of the others
    second = [r for k in range(20) for r in fault_rows(f"dev-{k}", t0, seed=k)[10:20]]
    store(second)
    report = reshard(5)
    assert report.old == [3] and report.new == 5
    monkeypatch.setattr(settings, "scan_shards", 5)
    run_scan(drain=False)
    # Every reading once: the detector states saw each device's 20 readings, no more.
    assert db.execute("SELECT sum(readings), count(*) FROM detector_state").fetchone() == (400, 20)
    names = sorted(r[0] for r in db.execute("SELECT name FROM scan_state WHERE name LIKE 'readings/%'"))
    assert names == [f"readings/{s}of5" for s in range(5)]


def test_a_worker_with_another_shard_count_refuses_to_scan(db, redis_client, monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "scan_shards", 2)
    run_scan(drain=False)
    monkeypatch.setattr(settings, "scan_shards", 4)
    assert run_scan(drain=False).status == "misconfigured"
