"""End to end: a 260 V reading published over MQTT reaches `alerts:anomalies`, its channel and its
stream — through the real bridge, Celery ingest worker and the ingest job's safety check.

Runs a private Mosquitto (the project's configuration) and a private Redis (Celery broker and
alert target), so nothing of a running gridmon is touched.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
import redis

from gridmon.jobs.publish import CHANNEL, LIST_KEY, STREAM_KEY
from gridmon.services import procs
from gridmon.services.mosquitto import MosquittoProcess
from gridmon.services.redis_server import RedisProcess
from tests.conftest import TEST_DB_URL

pytestmark = pytest.mark.slow


def reading(device: str, voltage: float) -> bytes:
    return orjson.dumps(
        {"device_id": device, "timestamp": time.time(), "voltage": voltage, "current": 4.0, "temperature": 35.0}
    )


def test_260_volts_over_mqtt_reaches_redis(db, tmp_path: Path):
    mosquitto = MosquittoProcess(tmp_path / "mosquitto").start()
    server = RedisProcess(tmp_path / "redis").start()
    env = procs.child_env(
        {
            "GRIDMON_DATABASE_URL": TEST_DB_URL,
            "GRIDMON_REDIS_URL": server.url,
            "GRIDMON_BROKER_URL": server.url,
            "GRIDMON_MQTT_HOST": "127.0.0.1",
            "GRIDMON_MQTT_PORT": mosquitto.port,
            "GRIDMON_BRIDGE_METRICS_PORT": 0,
            "GRIDMON_WORKER_METRICS_PORT": 0,
            "GRIDMON_LOG_LEVEL": "WARNING",
        }
    )
    worker = procs.start_worker(env, tmp_path / "worker.log", concurrency=1, hostname="e2e-alerts@%h")
    bridge = procs.start_bridge(env, tmp_path / "bridge.log", "e2e-alerts-bridge")
    client = redis.Redis.from_url(server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-alerts-sensor")
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:

        def stored(device: str) -> bool:
            row = db.execute("SELECT count(*) FROM sensor_readings WHERE device_id = %s", (device,)).fetchone()
            return bool(row and row[0])

        # Until the bridge has subscribed, a publication has no session to wait in: repeat a
        # normal reading until one is stored, then the path is known to be up.
        def path_up() -> bool:
            publisher.publish("grid/sensors/warmup", reading("warmup", 230.0), qos=1).wait_for_publish(5)
            return stored("warmup")

        assert procs.wait_until(path_up, timeout=60, interval=0.5), (tmp_path / "worker.log").read_text()[-2000:]

        publisher.publish("grid/sensors/sensor_260", reading("sensor_260", 260.0), qos=1).wait_for_publish(5)
        assert procs.wait_until(lambda: client.xlen(STREAM_KEY) > 0, timeout=20)

        [(_, fields)] = client.xrange(STREAM_KEY)
        event = orjson.loads(fields[b"data"])
        assert (event["device_id"], event["metric"], event["value"]) == ("sensor_260", "voltage", 260.0)
        assert (event["event"], event["severity"], event["detector"]) == ("opened", "high", "safety")
        assert orjson.loads(client.lindex(LIST_KEY, 0) or b"{}")["episode_id"] == event["episode_id"]
        message = None
        for _ in range(50):
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                break
        assert message is not None and orjson.loads(message["data"])["event_id"] == event["event_id"]
        row = db.execute("SELECT id, state FROM alerts WHERE device_id = 'sensor_260'").fetchone()
        assert row == (event["episode_id"], "open")
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        pubsub.close()
        client.close()
        procs.stop(bridge)
        procs.stop(worker)
        server.stop()
        mosquitto.stop()
