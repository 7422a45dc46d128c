"""Predictive maintenance against the real PostgreSQL and Redis: SQL buckets, the task, notifications."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gridmon.domain.alerts import MAINTENANCE
from gridmon.domain.units import DAY_S
from gridmon.jobs.predict import run_predictions
from gridmon.maintenance.buckets import BUCKET_COLUMNS, bucketize
from gridmon.maintenance.model import DeviceProfile, MaintenanceConfig
from gridmon.storage import alerts as alert_store
from gridmon.storage import maintenance_reads, predictions


def readings(
    device_id: str, *, end: float, days: float, level_now: float, slope: float, seed: int, interval_s: float = 300.0
) -> pd.DataFrame:
    """A device whose trend is `level_now` at `end`, changing by `slope` °C/day, with a daily cycle."""
    rng = np.random.default_rng(seed)
    ts = np.round(end - np.arange(0.0, days * DAY_S, interval_s)[::-1] - rng.uniform(0, 5, 1)[0], 3)
    d = (ts - end) / DAY_S
    return pd.DataFrame(
        {
            "device_id": device_id,
            "ts": ts,
            "voltage": np.round(230 + rng.normal(0, 1.5, ts.size), 3),
            "current": np.round(np.clip(4 + rng.normal(0, 0.5, ts.size), 0, None), 3),
            "temperature": np.round(
                level_now + slope * d + 2.5 * np.sin(2 * math.pi * d) + rng.normal(0, 0.7, ts.size), 3
            ),
        }
    )


def insert(
    conn: psycopg.Connection, frame: pd.DataFrame, *, limit: float | None = None, rated: float | None = None
) -> None:
    device = str(frame.device_id.iloc[0])
    first, last = (datetime.fromtimestamp(float(x), UTC) for x in (frame.ts.min(), frame.ts.max()))
    conn.execute(
        "INSERT INTO devices (device_id, first_seen, last_seen, temperature_limit, rated_current)"
        " VALUES (%s, %s, %s, %s, %s)",
        (device, first, last, limit, rated),
    )
    with (
        conn.cursor() as cur,
        cur.copy("COPY sensor_readings (device_id, ts, voltage, current, temperature) FROM STDIN") as copy,
    ):
        for row in frame.itertuples(index=False):
            copy.write_row(
                (row.device_id, datetime.fromtimestamp(row.ts, UTC), row.voltage, row.current, row.temperature)
            )


CHANNEL, LIST_KEY = MAINTENANCE.channel, MAINTENANCE.list_key


def messages(client: redis.Redis) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(LIST_KEY, 0, -1)]


# --- registration --------------------------------------------------------------------------


def test_task_is_registered_on_the_maintenance_queue_with_explicit_options():
    from beat_schedule import build_schedule
    from gridmon.celery import app
    from gridmon.config import get_settings
    from workers.maintenance import TRANSIENT_DB_ERRORS, predict

    assert predict.name == "workers.maintenance.predict"
    assert "workers.maintenance.predict" in app.tasks
    assert predict.acks_late and predict.reject_on_worker_lost
    assert tuple(predict.autoretry_for) == TRANSIENT_DB_ERRORS
    route = app.amqp.router.route({}, "workers.maintenance.predict")
    assert route["queue"].name == "maintenance"
    entry = build_schedule(get_settings())["maintenance-predict"]
    assert entry["task"] == "workers.maintenance.predict_all"  # one predict_shard per scan shard
    assert entry["schedule"] == 900.0 and entry["options"]["expires"] <= entry["schedule"]
    for name in ("workers.maintenance.predict_all", "workers.maintenance.predict_shard"):
        assert app.amqp.router.route({}, name)["queue"].name == "maintenance"


# --- the SQL path equals the pandas path ---------------------------------------------------


def test_sql_buckets_equal_pandas_buckets(db):
    end = 1_767_225_600.0 + 3 * DAY_S
    frame = readings("sqlpd", end=end, days=2, level_now=60.0, slope=3.0, seed=1, interval_s=97.0)
    frame.loc[frame.index[::50], "current"] = 16.0  # spikes and overload in some buckets
    insert(db, frame, rated=10.0)
    config = MaintenanceConfig()
    profile = DeviceProfile("sqlpd", rated_current=10.0)
    start = end - config.lookback_s
    from_sql = maintenance_reads.load_buckets(db, profile, start=start, end=end, config=config)
    from_pandas = bucketize(
        frame,
        bucket_s=config.bucket_s,
        rated_current=10.0,
        spike_factor=config.spike_factor,
        rise_c=config.hotspot_rise_c,
    )
    assert len(from_sql) == len(from_pandas) > 24
    for column in BUCKET_COLUMNS:
        np.testing.assert_allclose(from_sql[column], from_pandas[column], rtol=1e-9, atol=1e-6, err_msg=column)
    assert from_sql.cur_over.sum() > 0 and from_sql.cur_spikes.sum() > 0


def test_newest_reading_from_the_database_is_the_latest(db):
    end = time.time()
    frame = readings("newest", end=end, days=1, level_now=50.0, slope=1.0, seed=2)
    insert(db, frame)
    newest = maintenance_reads.load_newest_reading(db, "newest", start=end - DAY_S * 2, end=end + 1)
    assert newest is not None
    last = frame.sort_values("ts").iloc[-1]
    assert newest.ts == pytest.approx(float(last.ts), abs=1e-3)
    assert newest.temperature == pytest.approx(float(last.temperature))


# --- the task --------------------------------------------------------------------------------


def test_task_predicts_every_device_and_notifies_the_high_risk_one(db, redis_client):
    from workers.maintenance import predict

    end = time.time() - 5
    insert(db, readings("hot", end=end, days=3, level_now=70.0, slope=4.0, seed=3))  # 80 °C in ~2.5 days
    insert(db, readings("calm", end=end, days=3, level_now=36.0, slope=0.0, seed=4))
    insert(db, readings("lowlimit", end=end, days=3, level_now=50.0, slope=2.0, seed=5), limit=60.0)
    sub = redis_client.pubsub()
    sub.subscribe(CHANNEL)
    assert sub.get_message(timeout=2)["type"] == "subscribe"

    summary = predict()

    assert summary["devices"] == 3 and summary["high_risk"] == 2
    assert summary["sent"] == 2 and summary["pending"] == 0
    count = db.execute("SELECT count(*) FROM maintenance_predictions").fetchone()[0]
    assert count == 3
    latest = {p.device_id: p for p in predictions.latest_predictions(db)}
    assert set(latest) == {"hot", "calm", "lowlimit"}
    hot, calm, low = latest["hot"], latest["calm"], latest["lowlimit"]
    assert hot.risk_level == "critical" and hot.predicted_failure_date is not None
    assert 1.5 < (hot.predicted_failure_date.timestamp() - end) / DAY_S < 3.5
    assert calm.risk_level == "low" and calm.predicted_failure_date is None
    # the profile's 60 °C limit, not the default 80 °C: ~5 days at 2 °C/day
    assert low.predicted_failure_date is not None
    assert 4.0 < (low.predicted_failure_date.timestamp() - end) / DAY_S < 6.0
    assert low.inputs["profile"]["temperature_limit"] == 60.0
    assert low.risk_level == "critical"  # within 7 days of its own limit
    again = predictions.latest_prediction(db, "hot")
    assert again is not None and again.risk_score == hot.risk_score and again.interval == hot.interval
    assert predictions.latest_prediction(db, "nobody") is None

    sent = {m["device_id"]: m for m in messages(redis_client)}
    assert set(sent) == {"hot", "lowlimit"}  # calm is low risk: not announced
    assert sent["hot"]["risk_level"] == "critical" and sent["hot"]["previous_level"] is None
    assert sent["hot"]["predicted_failure_date"] == hot.predicted_failure_date.isoformat()
    published = [sub.get_message(timeout=2) for _ in range(2)]
    assert {json.loads(m["data"])["device_id"] for m in published if m} == {"hot", "lowlimit"}
    sub.close()


def test_single_device_run_writes_only_that_device(db, redis_client):
    from workers.maintenance import predict

    end = time.time() - 5
    insert(db, readings("one", end=end, days=2, level_now=40.0, slope=0.0, seed=6))
    insert(db, readings("two", end=end, days=2, level_now=40.0, slope=0.0, seed=7))
    assert predict(device_id="two")["devices"] == 1
    rows = db.execute("SELECT device_id FROM maintenance_predictions").fetchall()
    assert rows == [("two",)]


# --- notifications -----------------------------------------------------------------------------


def test_redis_message_sent_once_per_change_of_risk_level(db, redis_client):
    now = datetime.now(UTC)
    insert(db, readings("drift", end=now.timestamp() - 5, days=3, level_now=70.0, slope=4.0, seed=8))

    run_predictions(now=now)
    run_predictions(now=now)
    assert len(messages(redis_client)) == 1  # still critical: no second message

    db.execute("UPDATE devices SET temperature_limit = 500 WHERE device_id = 'drift'")
    run_predictions(now=now)  # no longer high risk: nothing published
    assert len(messages(redis_client)) == 1

    db.execute("UPDATE devices SET temperature_limit = NULL WHERE device_id = 'drift'")
    run_predictions(now=now)  # back to critical: a change, announced again
    sent = messages(redis_client)  # LPUSH: newest first
    assert len(sent) == 2
    assert sent[0]["risk_level"] == "critical" and sent[0]["previous_level"] in {"low", "medium"}
    levels = [r[0] for r in db.execute("SELECT risk_level FROM maintenance_predictions ORDER BY id")]
    assert len(levels) == 4 and levels[0] == levels[1] == levels[3] == "critical" and levels[2] != "critical"


def test_redis_outage_keeps_the_notification_until_redis_is_back(db, redis_client):
    now = datetime.now(UTC)
    insert(db, readings("outage", end=now.timestamp() - 5, days=3, level_now=70.0, slope=4.0, seed=9))
    # nothing listens on port 1: a real connection failure
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))

    first = run_predictions(now=now, client=down)
    assert first.queued == 1 and first.sent == 0 and first.pending == 1 and first.redis_error
    assert messages(redis_client) == []

    second = run_predictions(now=now)  # level unchanged, but the pending message goes out now
    assert second.queued == 0 and second.sent == 1 and second.pending == 0
    third = run_predictions(now=now)
    assert third.sent == 0
    sent = messages(redis_client)
    assert len(sent) == 1 and sent[0]["device_id"] == "outage"


def test_recent_anomaly_episodes_come_from_the_alerts_table(db, redis_client):
    assert alert_store.alerts_table_exists(db)  # the migrations create it
    now = datetime.now(UTC)
    insert(db, readings("alerted", end=now.timestamp() - 5, days=2, level_now=40.0, slope=0.0, seed=10))
    db.execute(
        "INSERT INTO alerts (device_id, metric, detector, severity, opened_at, last_seen_at)"
        " VALUES ('alerted', 'temperature', 'zscore', 'high', now() - interval '2 hours', now())"
    )
    run_predictions(now=now)
    p = predictions.latest_prediction(db, "alerted")
    assert p is not None
    assert p.inputs["episodes"]["count"] == 1 and p.inputs["episodes"]["max_severity"] == "high"
    assert any(f["factor"] == "anomaly_episodes" for f in p.risk_factors)


def test_shards_split_the_fleet_between_prediction_runs(db):
    from gridmon.domain.shards import shard_of
    from gridmon.jobs.predict import run_predictions

    end = 1_767_225_600.0 + 3 * DAY_S
    for k in range(6):
        insert(db, readings(f"shard-{k}", end=end, days=1, level_now=50.0, slope=0.0, seed=k, interval_s=300.0))
    now = datetime.fromtimestamp(end, UTC)
    counts = [run_predictions(now=now, shard=(s, 3)).devices for s in range(3)]
    assert sum(counts) == 6
    assert counts == [sum(1 for k in range(6) if shard_of(f"shard-{k}", 3) == s) for s in range(3)]


def test_each_round_enqueues_every_shard_once_starting_one_further() -> None:
    """A round that overruns loses its last tasks to expiry: rotating the order makes that a
    different shard each round, so no shard starves while others are scanned every time; shard
    0, whose task does the round's housekeeping, always goes first."""
    from gridmon.domain.shards import round_order

    rounds = [round_order(16, r) for r in range(40)]
    assert all(sorted(order) == list(range(16)) and order[0] == 0 for order in rounds)
    # The last quarter of each round (the tasks an overrun drops) covers every other shard over 15 rounds.
    dropped = {s for order in rounds[:15] for s in order[-4:]}
    assert dropped == set(range(1, 16))
    assert rounds[0][1] == 1 and rounds[1][1] == 2 and rounds[15] == rounds[0]
    assert round_order(1, 7) == [0]
