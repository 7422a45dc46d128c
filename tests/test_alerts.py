"""Alert episodes and publishing against the real PostgreSQL and Redis.

The ingest path's safety check is driven through `gridmon.jobs.ingest.store_batch` (the real ingest job),
the scan through `run_scan`; Redis is read back from the list, the channel and the stream.
"""

from __future__ import annotations

import orjson
import pytest

from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.base import Finding
from gridmon.domain.alerts import AnomalyAlert
from gridmon.jobs.ingest import store_batch
from gridmon.jobs.publish import CHANNEL, LIST_KEY, Publisher
from gridmon.jobs.scan import run_scan
from gridmon.storage.alerts import AlertStateError, acknowledge, get_alert, resolve
from tests.alerts_support import (
    alerts,
    base_time,
    fresh_alerting,
    list_events,
    normal_rows,
    outbox,
    store,
    stream_events,
    with_voltage,
)

__all__ = ["fresh_alerting"]
pytestmark = pytest.mark.usefixtures("fresh_alerting")


def channel_messages(pubsub) -> list[dict]:
    """Messages the subscription has received so far (the subscribe confirmation skipped)."""
    found: list[dict] = []
    for _ in range(100):
        message = pubsub.get_message(timeout=0.1)
        if message is None:
            if found:
                break
            continue
        found.append(orjson.loads(message["data"]))
    return found


def finding(ts: float, severity: str = "high", value: float = 258.0, metric: str = "voltage") -> Finding:
    return Finding("dev-a", ts, metric, value, severity, "safety", 0.1, f"{metric} {value}")


def test_episode_of_50_anomalous_readings_is_one_alert_and_one_message(db, redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    t0 = base_time()
    rows = normal_rows("dev-a", t0, 150)
    rows[100:150] = with_voltage(rows[100:150], 265.0)  # critical: no room to escalate
    for start in range(0, 150, 10):  # 15 ingest batches; the last 5 carry the fault
        store_batch(rows[start : start + 10])
    run_scan(now=t0 + 300)
    run_scan(now=t0 + 300)

    [alert] = alerts(db)
    assert (alert["state"], alert["severity"], alert["readings_count"]) == ("open", "critical", 50)
    assert (alert["detector"], alert["kind"]) == ("safety", "limit")  # the anomaly detector has its own alerts
    assert alert["opened_at"].timestamp() == rows[100][1]
    assert alert["last_seen_at"].timestamp() == rows[149][1]
    opened = [e for e in stream_events(redis_client) if e["metric"] == "voltage"]
    assert [e["event"] for e in opened] == ["opened"]
    assert [e["event"] for e in list_events(redis_client) if e["metric"] == "voltage"] == ["opened"]
    messages = channel_messages(pubsub)
    assert len(messages) == 1
    published = AnomalyAlert.from_dict(messages[0])
    assert (published.device_id, published.metric, published.episode_id) == ("dev-a", "voltage", alert["id"])
    assert published.value == 265.0
    pubsub.close()


def test_rising_severity_escalates_once_and_normal_readings_resolve(db, redis_client):
    t0 = base_time()
    rows = normal_rows("dev-a", t0, 200)
    rows[20:30] = with_voltage(rows[20:30], 252.0)  # low
    rows[30:40] = with_voltage(rows[30:40], 258.0)  # high
    rows[40:60] = with_voltage(rows[40:60], 257.0)  # still high: no further event
    for start in range(0, 200, 10):
        store_batch(rows[start : start + 10])
    run_scan(now=t0 + 400)

    [alert] = alerts(db)
    assert alert["state"] == "resolved" and alert["resolved_reason"] == "normal"
    assert (alert["severity"], alert["readings_count"]) == ("high", 40)
    events = [e for e in stream_events(redis_client) if e["metric"] == "voltage"]
    assert [(e["event"], e["severity"]) for e in events] == [
        ("opened", "low"),
        ("escalated", "high"),
        ("resolved", "high"),
    ]
    assert events[1]["ts"] == rows[30][1]
    assert len({e["event_id"] for e in events}) == 3


def test_a_long_gap_starts_a_new_episode(db, redis_client):
    t0 = base_time()
    gap = get_settings().episode_gap_s
    apply_findings(db, [finding(t0), finding(t0 + 2)], gap_s=gap)
    apply_findings(db, [finding(t0 + 2 + gap + 1)], gap_s=gap)
    first, second = alerts(db)
    assert (first["state"], first["resolved_reason"], first["readings_count"]) == ("resolved", "gap", 2)
    assert (second["state"], second["readings_count"]) == ("open", 1)
    assert [e for _, e, _ in outbox(db)] == ["opened", "resolved", "opened"]


def test_late_findings_inside_a_resolved_episode_do_not_alert_again(db, redis_client):
    t0 = base_time()
    gap = get_settings().episode_gap_s
    apply_findings(db, [finding(t0), finding(t0 + 10)], gap_s=gap)
    apply_findings(db, [], gap_s=gap, seen_until={"dev-a": t0 + 10 + gap + 1})
    apply_findings(db, [finding(t0 + 4), finding(t0 + 10)], gap_s=gap)  # one new reading, one seen
    [alert] = alerts(db)
    assert (alert["state"], alert["readings_count"]) == ("resolved", 3)
    assert [e for _, e, _ in outbox(db)] == ["opened", "resolved"]


def test_hook_and_scan_count_a_reading_once(db, redis_client):
    t0 = base_time()
    rows = normal_rows("dev-a", t0, 30)
    rows[10:15] = with_voltage(rows[10:15], 270.0)
    store_batch(rows)
    assert alerts(db)[0]["readings_count"] == 5  # the ingest check alone, before any scan
    run_scan(now=t0 + 60)
    [alert] = alerts(db)
    assert (alert["readings_count"], alert["severity"]) == (5, "critical")
    assert [e for _, e, _ in outbox(db)] == ["opened"]


def test_acknowledge_and_resolve_by_hand(db, redis_client):
    t0 = base_time()
    apply_findings(db, [finding(t0)], gap_s=60)
    [alert] = alerts(db)
    assert acknowledge(db, alert["id"] + 1, "nope") is None
    assert resolve(db, alert["id"] + 1) is None

    acked = acknowledge(db, alert["id"], "crew on site")
    assert acked is not None
    assert (acked["state"], acked["ack_note"]) == ("acknowledged", "crew on site")
    apply_findings(db, [finding(t0 + 5, "critical", 270.0)], gap_s=60)  # still collects, escalates
    current = get_alert(db, alert["id"])
    assert current is not None
    assert (current["state"], current["severity"], current["readings_count"]) == ("acknowledged", "critical", 2)

    resolved = resolve(db, alert["id"])
    assert resolved is not None and resolved["state"] == "resolved" and resolved["resolved_reason"] == "operator"
    with pytest.raises(AlertStateError):
        acknowledge(db, alert["id"], "too late")
    assert [e for _, e, _ in outbox(db)] == ["opened", "escalated", "resolved"]
    # The fault goes on after the operator resolved it: a new alert, not a silent merge.
    apply_findings(db, [finding(t0 + 10)], gap_s=60)
    assert [a["state"] for a in alerts(db)] == ["resolved", "open"]


def test_redis_down_keeps_events_until_it_returns(db, redis_client, tmp_path, monkeypatch):
    from gridmon.services.redis_server import RedisProcess

    server = RedisProcess(tmp_path / "redis").start()
    port = server.port
    monkeypatch.setattr(get_settings(), "redis_url", server.url)
    publisher = Publisher(server.url)
    try:
        t0 = base_time()
        server.stop()
        store_batch(with_voltage(normal_rows("dev-a", t0, 5), 265.0))  # ingest check: stored, not published
        result = publisher.drain()
        assert result.published == 0 and result.error is not None and "GRIDMON_REDIS_URL" in result.error
        [alert] = alerts(db)
        assert [(e, published) for _, e, published in outbox(db)] == [("opened", None)]

        server = RedisProcess(tmp_path / "redis", port=port).start()
        assert publisher.drain().published == 1
        assert [published is not None for _, _, published in outbox(db)] == [True]
        client = __import__("redis").Redis.from_url(server.url)
        [event] = stream_events(client)
        assert (event["event"], event["episode_id"]) == ("opened", alert["id"])
        assert client.llen(LIST_KEY) == 1
        client.close()
    finally:
        publisher.close()
        server.stop()


def test_list_is_capped(db, redis_client, monkeypatch):
    t0 = base_time()
    for i in range(5):
        apply_findings(db, [Finding(f"dev-{i}", t0, "voltage", 260.0, "high", "safety", 0.2, "x")], gap_s=60)
    Publisher(list_max=3).drain()
    assert redis_client.llen(LIST_KEY) == 3
    assert [e["device_id"] for e in list_events(redis_client)] == ["dev-2", "dev-3", "dev-4"]
    assert len(stream_events(redis_client)) == 5


def test_silent_device_raises_no_data_then_resolves(db, redis_client, monkeypatch):
    monkeypatch.setattr(get_settings(), "stale_min_s", 0.0)
    t0 = base_time()
    store(normal_rows("dev-a", t0, 30))  # every 2 s until t0 + 58
    last = t0 + 58
    run_scan(now=last + 5)  # 5 s of silence < 5 × 2 s
    assert alerts(db, stale=True) == []

    run_scan(now=last + 30)
    run_scan(now=last + 90)  # still the same silence: no second alert
    [alert] = alerts(db, stale=True)
    assert (alert["metric"], alert["detector"], alert["state"]) == ("no_data", "staleness", "open")
    assert alert["opened_at"].timestamp() == last
    assert alert["value"] == pytest.approx(90.0)

    store(normal_rows("dev-a", last + 100, 3))
    run_scan(now=last + 105)
    [alert] = alerts(db, stale=True)
    assert (alert["state"], alert["resolved_reason"]) == ("resolved", "reporting")
    assert [e["event"] for e in stream_events(redis_client)] == ["opened", "resolved"]


def test_device_profile_limits_apply_in_the_ingest_hook(db, redis_client):
    t0 = base_time()
    db.execute(
        "INSERT INTO devices (device_id, first_seen, last_seen, nominal_voltage, rated_current) "
        "VALUES ('dev-240', now(), now(), 240, NULL), ('dev-5a', now(), now(), NULL, 5)"
    )
    store_batch(
        [
            ["dev-240", t0, 255.0, 4.0, 35.0, None],  # inside 240 V ± 10 %, above the global 250 V
            ["dev-5a", t0, 230.0, 6.0, 35.0, None],  # above its 5 A rating, inside the global 10 A
        ]
    )
    assert [(a["device_id"], a["metric"]) for a in alerts(db)] == [("dev-5a", "current")]


def test_ingest_path_does_not_wait_for_another_drainer(db, redis_client, migrated_database):
    import psycopg

    from gridmon.storage.outbox import REDIS, SINKS

    apply_findings(db, [finding(base_time())], gap_s=60)
    publisher = Publisher()
    with psycopg.connect(migrated_database) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", SINKS[REDIS][1])
        assert publisher.drain(wait=False).published == 0
        assert publisher.pending
    assert publisher.drain_if_due(False) is not None  # pending: it looks again at once
    assert not publisher.pending
    assert [e["event"] for e in stream_events(redis_client)] == ["opened"]
    publisher.close()


def test_span_running_past_an_operator_resolved_alert_opens_a_new_one(db, redis_client):
    # A scan step whose span starts inside the resolved alert and continues after it (a backlog
    # step, or a slow scan) must not be swallowed by the resolved alert.
    t0 = base_time()
    apply_findings(db, [finding(t0), finding(t0 + 2)], gap_s=60)
    [alert] = alerts(db)
    resolve(db, alert["id"])
    apply_findings(db, [finding(t0 + 2), finding(t0 + 4), finding(t0 + 6)], gap_s=60)
    states = sorted(a["state"] for a in alerts(db))
    assert states == ["open", "resolved"]
