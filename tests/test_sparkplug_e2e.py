"""End to end: a Sparkplug B edge node → Mosquitto → bridge → Celery worker → rows and alerts.

The edge node is a paho client in the test publishing births, data by alias, a death and a
rebirth; it listens for the bridge's rebirth command. Then the simulator runs as a Sparkplug
edge node (`gridmon simulate --sparkplug`). Private Mosquitto and Redis; the test database.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from gridmon.domain import sparkplug as spb
from gridmon.domain.sparkplug_schema import BOOLEAN, DOUBLE, INT64
from gridmon.services import procs
from gridmon.services.mosquitto import MosquittoProcess
from gridmon.services.redis_server import RedisProcess
from tests.conftest import TEST_DB_URL

pytestmark = pytest.mark.slow

GROUP, NODE = "e2eplant", "edge7"
DEVICE = f"{NODE}:m1"


def _values(voltage: float, ts_ms: int, seq: int) -> bytes:
    return spb.encode(
        [("Voltage", 1, DOUBLE, voltage), ("Current", 2, DOUBLE, 4.25), ("Temperature", 3, DOUBLE, 35.5)],
        timestamp_ms=ts_ms,
        seq=seq,
    )


def test_edge_node_births_data_death_rebirth_and_malformed(db, tmp_path: Path):
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
            "GRIDMON_SPARKPLUG_GROUP": GROUP,
            "GRIDMON_LOG_LEVEL": "WARNING",
        }
    )
    worker = procs.start_worker(env, tmp_path / "worker.log", concurrency=1, hostname="e2e-spb@%h")
    bridge = procs.start_bridge(env, tmp_path / "bridge.log", "e2e-spb-bridge")
    rebirth = threading.Event()
    edge = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-spb-edge")
    edge.on_message = lambda _c, _u, msg: rebirth.set() if any(
        m.name == spb.REBIRTH_METRIC and m.boolean_value for m in spb.decode(msg.payload).metrics
    ) else None
    edge.connect("127.0.0.1", mosquitto.port)
    edge.subscribe(spb.command_topic(GROUP, NODE), qos=0)
    edge.loop_start()

    def send(kind: str, payload: bytes, device: str | None = "m1") -> None:
        topic = f"spBv1.0/{GROUP}/{kind}/{NODE}" + (f"/{device}" if device else "")
        edge.publish(topic, payload, qos=1).wait_for_publish(5)

    def rows() -> list[tuple]:
        return db.execute(
            "SELECT extract(epoch FROM ts)::float8, voltage, current, temperature FROM sensor_readings"
            " WHERE device_id = %s ORDER BY ts",
            (DEVICE,),
        ).fetchall()

    def no_data() -> list[tuple]:
        return db.execute(
            "SELECT detector, state, resolved_reason FROM alerts WHERE device_id = %s AND metric = 'no_data' ORDER BY id",
            (DEVICE,),
        ).fetchall()

    try:
        # The bridge's subscriptions exist once a JSON reading makes it through.
        def path_up() -> bool:
            doc = {"device_id": "warmup", "timestamp": time.time(), "voltage": 230.0, "current": 4.0, "temperature": 35.0}
            edge.publish("grid/sensors/warmup", orjson.dumps(doc), qos=1).wait_for_publish(5)
            return bool(db.execute("SELECT count(*) FROM sensor_readings WHERE device_id = 'warmup'").fetchone()[0])

        assert procs.wait_until(path_up, timeout=60, interval=0.5), (tmp_path / "worker.log").read_text()[-2000:]

        t0 = int(time.time() * 1000) - 60_000
        send("DDATA", spb.encode([(None, 1, DOUBLE, 229.5)], timestamp_ms=t0 + 1000, seq=5))  # before any birth
        assert rebirth.wait(20), (tmp_path / "bridge.log").read_text()[-2000:]
        send("NBIRTH", spb.encode([(spb.BD_SEQ, None, INT64, 3), (spb.REBIRTH_METRIC, None, BOOLEAN, False)], seq=0), None)
        send("DBIRTH", _values(230.0, t0 + 2000, 1))
        send("DDATA", spb.encode([(None, 1, DOUBLE, 231.75)], timestamp_ms=t0 + 3000, seq=2))
        expected = [
            (t0 / 1000 + 1, 229.5, 4.25, 35.5),
            (t0 / 1000 + 2, 230.0, 4.25, 35.5),
            (t0 / 1000 + 3, 231.75, 4.25, 35.5),
        ]
        assert procs.wait_until(lambda: len(rows()) >= 3, 30), rows()
        assert rows() == expected

        send("DDEATH", spb.encode([], timestamp_ms=t0 + 4000, seq=3))
        assert procs.wait_until(lambda: no_data() == [("sparkplug", "open", None)], 30), no_data()
        send("DBIRTH", _values(232.0, t0 + 5000, 4))  # the device is back
        assert procs.wait_until(lambda: no_data() == [("sparkplug", "resolved", "birth")], 30), no_data()
        assert rows()[-1] == (t0 / 1000 + 5, 232.0, 4.25, 35.5)

        garbage = b"\x0a\xff\xff\xff\xff\x0f not protobuf"
        send("DDATA", garbage)
        assert procs.wait_until(
            lambda: db.execute("SELECT reason, payload FROM dead_letters WHERE topic LIKE 'spBv1.0/%'").fetchall()
            == [("sparkplug_malformed", garbage)],
            30,
        )

        send("NDEATH", spb.encode([(spb.BD_SEQ, None, INT64, 3)], timestamp_ms=0), None)  # the node goes
        assert procs.wait_until(lambda: [r[1] for r in no_data()] == ["resolved", "open"], 30), no_data()

        # The simulator as a Sparkplug edge node.
        sim = subprocess.run(
            [sys.executable, "-m", "gridmon.cli.main", "simulate", "--sparkplug", "--sparkplug-group", GROUP,
             "--devices", "3", "--count", "30", "--rate", "200", "--port", str(mosquitto.port), "--json"],
            env={**env, "GRIDMON_DATA_DIR": str(tmp_path / "sim")}, capture_output=True, text=True, timeout=120,
        )
        assert sim.returncode == 0, sim.stderr[-2000:]
        assert orjson.loads(sim.stdout.strip().splitlines()[-1])["published"] == 30

        def simulated() -> int:
            row = db.execute("SELECT count(*) FROM sensor_readings WHERE device_id LIKE 'gridmon-sim:%'").fetchone()
            return int(row[0])

        assert procs.wait_until(lambda: simulated() == 30, 60), simulated()
    finally:
        edge.loop_stop()
        edge.disconnect()
        procs.stop(bridge)
        procs.stop(worker)
        server.stop()
        mosquitto.stop()
