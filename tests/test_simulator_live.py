"""The live simulator: the fleet state machine, dry run, and real publishing over Mosquitto.

Publishing tests use the system broker on 127.0.0.1:1883 (GRIDMON_MQTT_HOST/PORT) with a topic
prefix unique to the test, so nothing else subscribed to `grid/sensors/#` sees these readings.
The reconnection test starts its own throw-away broker so it can stop it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner

from gridmon.cli.simulate import register
from gridmon.config import get_settings
from gridmon.domain.readings import Reading, parse_reading
from gridmon.domain.units import DAY_S
from gridmon.simulator.catalogue import FAULT_KINDS, Fault
from gridmon.simulator.fleet import Fleet
from gridmon.simulator.load import make_load_payloads, publish_readings
from gridmon.simulator.payload import IsoStamper, encode_reading, iso_utc_us
from gridmon.simulator.publisher import BrokerUnavailable, MqttPublisher
from gridmon.simulator.runner import SimulationConfig, run_simulation
from gridmon.simulator.truth import TruthWriter, read_truth

T0 = 1_795_000_000.0


def _drive(fleet: Fleet, steps: int, interval: float = 2.0) -> list[Reading]:
    out = []
    for step in range(steps):
        for k in range(len(fleet)):
            out.append(fleet.reading(k, T0 + step * interval + k * 0.01))
    return out


def test_fleet_is_deterministic_and_truth_bounds_the_changed_readings() -> None:
    kwargs = {"devices": 4, "seed": 5, "anomaly_rate": 0.03, "time_compression": 20_000.0}
    a, b = Fleet(**kwargs), Fleet(**kwargs)  # type: ignore[arg-type]
    clean = Fleet(**{**kwargs, "anomaly_rate": 0.0})  # type: ignore[arg-type]
    readings, again, healthy = _drive(a, 1500), _drive(b, 1500), _drive(clean, 1500)
    truth = a.finish_all()
    assert readings == again and truth == b.finish_all()
    assert {f.kind for f in truth} == set(FAULT_KINDS)
    for fault in truth:
        assert fault.start <= fault.end
    for r, h in zip(readings, healthy, strict=True):
        changed = (r.voltage, r.current, r.temperature) != (h.voltage, h.current, h.temperature)
        inside = [f for f in truth if f.device_id == r.device_id and f.start <= r.ts <= f.end]
        assert len(inside) <= 1
        onset = bool(inside) and inside[0].kind == "degradation" and r.ts == inside[0].start
        assert changed == (bool(inside) and not onset), (r, inside)


def test_live_stuck_sensor_and_degradation() -> None:
    fleet = Fleet(
        devices=3, seed=1, anomaly_rate=0.05, kinds=["stuck_sensor", "degradation"], time_compression=50_000.0
    )
    readings = _drive(fleet, 2000)
    truth = fleet.finish_all()
    stuck = [f for f in truth if f.kind == "stuck_sensor"]
    degradations = [f for f in truth if f.kind == "degradation" and f.end < readings[-1].ts - 10]
    assert stuck and degradations
    for fault in stuck:
        span = [r for r in readings if r.device_id == fault.device_id and fault.start <= r.ts <= fault.end]
        assert len(span) >= 30 and len({(r.voltage, r.current, r.temperature) for r in span}) == 1
    for fault in degradations:
        assert fault.failure_at is not None
        rise, slope, compression = (fault.params[k] for k in ("rise_c", "slope_c_per_day", "time_compression"))
        assert fault.failure_at == pytest.approx(fault.start + rise / slope * DAY_S / compression)
        assert fault.end <= fault.failure_at < fault.end + 2.0


def _cli(*args: str) -> click.testing.Result:
    group = click.Group()
    register(group)
    return CliRunner().invoke(group, ["simulate", *args], catch_exceptions=False)


def test_dry_run_prints_payloads_the_bridge_accepts(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    result = _cli("--dry-run", "--rate", "20000", "--count", "400", "--seed", "9", "--anomaly-rate", "0.2",
                  "--truth", str(truth))  # fmt: skip
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 400
    now = time.time()
    for line in lines:
        doc = json.loads(line)
        assert set(doc) == {"device_id", "timestamp", "voltage", "current", "temperature", "seq"}
        assert doc["timestamp"].endswith("+00:00") and len(doc["timestamp"]) == 32
        reading = parse_reading(f"grid/sensors/{doc['device_id']}", line.encode(), now)
        assert isinstance(reading, Reading), reading
    by_device: dict[str, list[int]] = {}
    for line in lines:
        doc = json.loads(line)
        by_device.setdefault(doc["device_id"], []).append(doc["seq"])
    # Each device counts its own readings: 0, 1, 2, … in publishing order (gap accounting's input).
    assert all(seqs == list(range(seqs[0], seqs[0] + len(seqs))) for seqs in by_device.values())
    faults = read_truth(truth)
    assert faults and all(isinstance(f, Fault) for f in faults)
    assert "printed 400/400 readings" in result.stderr


def test_cli_reports_an_unreachable_broker_in_one_line() -> None:
    port = str(_free_port())
    result = _cli(
        "--count", "1", "--host", "127.0.0.1", "--port", port, "--truth", "/dev/null", "--connect-timeout", "0.2"
    )
    assert result.exit_code == 2
    assert "MQTT broker" in result.stderr and "GRIDMON_MQTT_HOST" in result.stderr


def test_load_payloads_are_valid_unique_and_reproducible() -> None:
    fixed = list(make_load_payloads(300, devices=7, seed=2, start_ts=T0))
    assert fixed == list(make_load_payloads(300, devices=7, seed=2, start_ts=T0))
    live = list(make_load_payloads(5000, devices=3, seed=2))
    now = time.time()
    parsed = [parse_reading(topic, payload, now) for topic, payload in fixed + live]
    assert all(isinstance(r, Reading) for r in parsed)
    keys = {(r.device_id, r.ts) for r in parsed if isinstance(r, Reading)}
    assert len(keys) == len(parsed)
    assert {topic for topic, _ in fixed} == {f"grid/sensors/sensor_{k}" for k in range(7)}


# --- over a real broker ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Subscriber:
    """A paho subscriber collecting every message under `prefix/#`."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._prefix = prefix
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, n: int, deadline_s: float = 20.0) -> list[tuple[str, bytes]]:
        end = time.monotonic() + deadline_s
        while len(self.messages) < n and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.1)  # anything beyond n would be a duplicate: give it a moment to show up
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def prefix() -> str:
    return f"gridmon-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def broker() -> tuple[str, int]:
    settings = get_settings()
    return settings.mqtt_host, settings.mqtt_port


class RecordingSink:
    """Remembers what the simulator handed to the publisher."""

    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic, payload))
        return self.publisher.publish(topic, payload)

    def service(self, timeout: float = 0.0) -> None:
        self.publisher.service(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        return self.publisher.flush(timeout)

    def close(self) -> None:
        self.publisher.close()


def test_simulator_publishes_every_reading_to_a_subscriber(
    broker: tuple[str, int], prefix: str, tmp_path: Path
) -> None:
    host, port = broker
    sub = Subscriber(host, port, prefix)
    try:
        publisher = MqttPublisher(host=host, port=port, client_id=f"sim-{uuid.uuid4().hex[:8]}", max_inflight=50)
        publisher.connect(5)
        sink = RecordingSink(publisher)
        config = SimulationConfig(devices=5, seed=4, rate=3000.0, count=300, anomaly_rate=0.05, topic_prefix=prefix)
        with TruthWriter(tmp_path / "truth.jsonl") as truth:
            summary = run_simulation(config, sink, truth=truth)
        received = sub.wait_for(300)
    finally:
        sub.close()
    assert summary.readings == summary.published == 300 and summary.unacked == 0
    assert len(received) == 300
    assert sorted(received) == sorted(sink.sent)
    assert {topic.rsplit("/", 1)[1] for topic, _ in received} == {f"sensor_{k}" for k in range(5)}
    assert len(read_truth(tmp_path / "truth.jsonl")) == sum(summary.faults.values())


def test_publish_readings_delivers_load_payloads(broker: tuple[str, int], prefix: str) -> None:
    host, port = broker
    sub = Subscriber(host, port, prefix)
    try:
        payloads = list(make_load_payloads(800, devices=8, seed=1, start_ts=T0, prefix=prefix))
        stats = publish_readings(
            iter(payloads),
            host=host,
            port=port,
            rate=None,
            max_inflight=100,
            client_id=f"t-load-{uuid.uuid4().hex[:8]}",
        )
        received = sub.wait_for(800)
    finally:
        sub.close()
    assert stats.count == stats.sent == 800 and stats.rate > 0 and stats.dropped == 0
    assert sorted(received) == sorted(payloads)


def test_publish_readings_paced_pulls_payloads_lazily(broker: tuple[str, int], prefix: str) -> None:
    host, port = broker
    pulled: list[int] = []
    when: list[float] = []

    def source() -> Iterator[tuple[str, bytes]]:
        for k, item in enumerate(make_load_payloads(50, devices=2, seed=1, prefix=prefix)):
            pulled.append(k)
            when.append(time.perf_counter())
            yield item

    stats = publish_readings(source(), host=host, port=port, rate=200.0, client_id=f"t-paced-{uuid.uuid4().hex[:8]}")
    assert stats.count == 50 and pulled == list(range(50))
    # each payload is pulled when it is due (the 50th 49/200 s after the first), not all at once
    # up front: a slow machine only spreads the pulls further apart
    assert when[-1] - when[0] >= 0.8 * 49 / 200.0


def test_unreachable_broker_raises_one_line_error() -> None:
    publisher = MqttPublisher(host="127.0.0.1", port=_free_port(), client_id="nobody")
    with pytest.raises(BrokerUnavailable, match="unavailable") as info:
        publisher.connect(timeout=0.3)
    assert "\n" not in str(info.value)


def _start_mosquitto(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


@pytest.mark.skipif(not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()), reason="no mosquitto")
def test_readings_made_while_the_broker_is_down_arrive_after_it_returns(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start_mosquitto(port, tmp_path)
    payloads = list(make_load_payloads(200, devices=4, seed=3, start_ts=T0, prefix="outage"))
    publisher = MqttPublisher(host="127.0.0.1", port=port, client_id="outage-pub", block_when_full=False)
    try:
        publisher.connect(5)
        for item in payloads[:100]:
            publisher.publish(*item)
        assert publisher.flush(10)
        proc.terminate()
        proc.wait(10)
        while publisher.connected:  # notice the loss
            publisher.service(0.05)
        for item in payloads[100:]:
            assert publisher.publish(*item)  # kept, not dropped
        assert publisher.unacked == 100
        proc = _start_mosquitto(port, tmp_path)
        sub = Subscriber("127.0.0.1", port, "outage")
        try:
            assert publisher.flush(20), "queued readings were not delivered after reconnecting"
            received = sub.wait_for(100)
        finally:
            sub.close()
        assert publisher.reconnects == 1 and publisher.dropped == 0
        assert sorted(received) == sorted(payloads[100:])
    finally:
        publisher.close()
        proc.terminate()
        proc.wait(10)


def test_offline_backlog_is_bounded(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start_mosquitto(port, tmp_path)
    publisher = MqttPublisher(
        host="127.0.0.1", port=port, client_id="bounded", max_inflight=10, max_backlog=20, block_when_full=False
    )
    try:
        publisher.connect(5)
        proc.terminate()
        proc.wait(10)
        while publisher.connected:
            publisher.service(0.05)
        results = [publisher.publish("bounded/x", b"{}") for _ in range(30)]
        assert results.count(True) == 20 and publisher.dropped == 10
    finally:
        publisher.close()
        if proc.poll() is None:
            proc.terminate()


def test_iso_stamper_formats_like_isoformat() -> None:
    stamp = IsoStamper()
    rng = np.random.default_rng(0)
    times = np.sort(rng.integers(1_700_000_000_000_000, 1_900_000_000_000_000, 500)).tolist()
    for us in [0, 1, 999_999, 1_000_000, *times]:
        assert stamp(us) == iso_utc_us(us)
        if us < 946_684_800_000_000:
            continue  # before 2000: formatted right, but outside the accepted reading range
        reading = parse_reading("grid/sensors/x", encode_reading("x", us / 1e6, 230.0, 4.0, 35.0), 2e9)
        assert isinstance(reading, Reading) and reading.ts == pytest.approx(us / 1e6, abs=1e-6)


def test_load_payload_values_are_healthy() -> None:
    values = np.array(
        [[json.loads(p)[k] for k in ("voltage", "current", "temperature")] for _, p in make_load_payloads(2000, seed=5)]
    )
    assert 225 < values[:, 0].mean() < 235 and 3 < values[:, 1].mean() < 5 and 30 < values[:, 2].mean() < 40
