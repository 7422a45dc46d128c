"""Restarts that do not page: silence inside a pipeline outage is not the devices' fault.

Driven through the real pieces with explicit times: the bridges' heartbeat mark in Redis
(`gridmon.heartbeat.mark_alive`, what a bridge writes every few seconds), the planned-stop rows
`gridmon up` writes (`gridmon.storage.outages`), and the scan job (`run_scan(now=…)`), against
the real PostgreSQL and Redis.
"""

from __future__ import annotations

import pytest

from gridmon import heartbeat
from gridmon.jobs.scan import run_scan
from gridmon.storage import db as storage
from gridmon.storage import outages
from tests.alerts_support import alerts, base_time, fresh_alerting, normal_rows, store

__all__ = ["fresh_alerting"]
pytestmark = pytest.mark.usefixtures("fresh_alerting")

UP = "gridmon up /srv/gridmon/.gridmon"
GAP_S = 15.0


def no_data(conn) -> list[dict]:
    return [a for a in alerts(conn, stale=True) if a["metric"] == "no_data"]


def test_stopping_the_pipeline_for_two_minutes_pages_nobody(db, redis_client) -> None:
    t0 = base_time()
    stop = t0 + 300.0
    for device in ("dev-a", "dev-b"):
        store(normal_rows(device, t0, 150))  # every 2 s until the stop
    store(normal_rows("dev-quiet", t0, 139))  # went quiet 24 s before the stop (the threshold is 30 s)
    heartbeat.mark_alive(stop - 3, "bridge-1", GAP_S)  # the bridge's last heartbeat before the stop
    with storage.connection() as conn:
        outages.begin_stop(conn, UP, stop)  # Ctrl-C

    run_scan(now=stop + 60)  # beat runs a scan while gridmon is down (it may, with a worker left)
    assert no_data(db) == []

    restart = stop + 120
    with storage.connection() as conn:
        outages.end_stops(conn, UP, restart)  # `gridmon up` starts again
    assert heartbeat.mark_alive(restart + 5, "bridge-1", GAP_S) == (stop - 3, restart + 5)  # listening again
    store(normal_rows("dev-a", restart + 6, 3))  # dev-a reports again; dev-b does not (yet)
    run_scan(now=restart + 10)  # the first scan after the restart
    assert no_data(db) == []
    rows = db.execute("SELECT source, reason, ended_at IS NULL FROM pipeline_outages ORDER BY started_at").fetchall()
    assert rows == [("bridge-1", "heartbeat_gap", False), (UP, "planned_stop", False)]

    # Silence outside the outage counts: dev-quiet's 21 s before the bridge's last heartbeat and
    # 30 s after the restart; dev-b's 45 s after (its last reading came after the last heartbeat).
    store(normal_rows("dev-a", restart + 12, 19))
    for beat in range(10, 50, 5):  # the bridge keeps heartbeating
        assert heartbeat.mark_alive(restart + beat, "bridge-1", GAP_S) is None
    run_scan(now=restart + 35)
    assert [a["device_id"] for a in no_data(db)] == ["dev-quiet"]
    run_scan(now=restart + 50)
    by_device = {a["device_id"]: a for a in no_data(db)}
    assert set(by_device) == {"dev-b", "dev-quiet"}
    silent = by_device["dev-b"]
    assert silent["opened_at"].timestamp() == t0 + 298
    assert silent["value"] == pytest.approx(50 - 5)  # from the bridge's first heartbeat after the restart
    assert "pipeline outage not counted" in silent["description"]


def test_a_bridge_that_stopped_heartbeating_is_an_outage_going_on(db, redis_client) -> None:
    t0 = base_time()
    store(normal_rows("dev-a", t0, 100))  # until t0 + 198
    heartbeat.mark_alive(t0 + 199, "bridge-1", GAP_S)  # then the bridge (or its broker) went away
    run_scan(now=t0 + 199 + 120)
    assert no_data(db) == []
    assert heartbeat.down_since(t0 + 199 + 120, GAP_S) == t0 + 199


def test_without_any_outage_silence_is_reported_as_before(db, redis_client) -> None:
    t0 = base_time()
    store(normal_rows("dev-a", t0, 100))
    heartbeat.mark_alive(t0 + 319, "bridge-1", GAP_S)  # the bridge is listening the whole time
    run_scan(now=t0 + 320)
    [alert] = no_data(db)
    assert alert["description"] == "no data for 122 s (usual interval 2.0 s)"


def test_outages_between_clips_merges_and_runs_open_ones_to_the_end(db) -> None:
    with db.transaction():
        conn = db
        outages.record_gap(conn, "bridge-1", 100.0, 200.0)
        outages.record_gap(conn, "bridge-1", 100.0, 200.0)  # the same gap twice: stored once
        outages.record_gap(conn, "bridge-2", 150.0, 260.0)
        outages.record_gap(conn, "bridge-1", 400.0, 420.0)
        outages.begin_stop(conn, UP, 900.0)  # still stopped
    assert db.execute("SELECT count(*) FROM pipeline_outages").fetchone() == (4,)
    assert outages.outages_between(db, 120.0, 1000.0) == [(120.0, 260.0), (400.0, 420.0), (900.0, 1000.0)]
    assert outages.outages_between(db, 300.0, 390.0) == []
    with db.transaction():
        assert outages.end_stops(db, UP, 950.0) == 1
    assert outages.outages_between(db, 0.0, 2000.0)[-1] == (900.0, 950.0)
