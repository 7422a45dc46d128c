"""The embedded MQTT broker (amqtt + `LosslessBrokerHandler`) against a paho subscriber that
acknowledges by hand, as the bridge does: QoS 1 on a persistent MQTT 3.1.1 session is never lost.

Each case is one that plain amqtt 0.12.1 loses (see `gridmon/services/embedded_mqtt.py`). The
broker runs as its own process on a free port, as in embedded mode.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gridmon.services import procs
from gridmon.services.embedded_mqtt import write_password_file
from gridmon.services.mosquitto import free_port, wait_for_port

USER, PASSWORD = "gridmon", "test-password-123"
TOPIC = "grid/sensors/#"


class Broker:
    def __init__(self, port: int, proc: subprocess.Popen[bytes]):
        self.port = port
        self.proc = proc


@pytest.fixture()
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Broker]:
    max_inflight = getattr(request, "param", 20000)
    password_file = tmp_path / "passwd"
    write_password_file(password_file, USER, PASSWORD)
    port = free_port()
    args = [sys.executable, "-m", "gridmon.services.embedded_mqtt", "--port", str(port)]
    args += ["--password-file", str(password_file), "--max-inflight", str(max_inflight)]
    with (tmp_path / "broker.log").open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    assert wait_for_port(port, timeout=20), (tmp_path / "broker.log").read_text()
    yield Broker(port, proc)
    procs.stop(proc, timeout=15)
    log = (tmp_path / "broker.log").read_text()
    assert "Traceback" not in log, log


class Subscriber:
    """A persistent-session subscriber; `auto_ack` False keeps every message unacknowledged."""

    def __init__(self, port: int, client_id: str, auto_ack: bool):
        self.received: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.auto_ack = auto_ack
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPIC, qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append(message)
        if self.auto_ack:
            client.ack(message.mid, message.qos)

    def payloads(self) -> set[bytes]:
        with self.lock:
            return {bytes(m.payload) for m in self.received}

    def close(self) -> None:
        """Drop the connection without acknowledging anything still held."""
        self.client.disconnect()
        self.client.loop_stop()


def publish(port: int, n: int, tag: str) -> set[bytes]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}", protocol=mqtt.MQTTv311)
    client.username_pw_set(USER, PASSWORD)
    client.connect("127.0.0.1", port)
    client.loop_start()
    payloads = [f"{tag}-{i}".encode() for i in range(n)]
    infos = [client.publish(f"grid/sensors/d{i % 7}", p, qos=1) for i, p in enumerate(payloads)]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return set(payloads)


def test_anonymous_clients_are_refused(broker: Broker) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv311)
    codes: list[object] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.append(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert procs.wait_until(lambda: bool(codes), timeout=10)
    client.loop_stop()
    assert getattr(codes[0], "is_failure", False)


def test_unacknowledged_messages_come_back_after_reconnect(broker: Broker) -> None:
    first = Subscriber(broker.port, "bridge-a", auto_ack=False)
    sent = publish(broker.port, 500, "a")
    assert procs.wait_until(lambda: first.payloads() == sent, timeout=30)
    first.close()  # 500 delivered, none acknowledged
    second = Subscriber(broker.port, "bridge-a", auto_ack=True)
    assert procs.wait_until(lambda: second.payloads() == sent, timeout=30)
    second.close()


@pytest.mark.slow
def test_an_acknowledgement_later_than_five_seconds_loses_nothing(broker: Broker) -> None:
    first = Subscriber(broker.port, "bridge-b", auto_ack=False)
    sent = publish(broker.port, 200, "b")
    assert procs.wait_until(lambda: first.payloads() == sent, timeout=30)
    time.sleep(6)  # plain amqtt forgets a message whose PUBACK is 5 s late
    first.close()
    second = Subscriber(broker.port, "bridge-b", auto_ack=True)
    assert procs.wait_until(lambda: second.payloads() == sent, timeout=30)
    second.close()


@pytest.mark.parametrize("broker", [50], indirect=True)
def test_a_backlog_beyond_the_inflight_window_arrives_whole(broker: Broker) -> None:
    """Queued while the subscriber is away, more than the in-flight window, and the subscriber
    drops the connection again halfway through the replay: every message still arrives."""
    away = Subscriber(broker.port, "bridge-c", auto_ack=True)
    away.close()
    sent = publish(broker.port, 1000, "c")
    partial = Subscriber(broker.port, "bridge-c", auto_ack=False)
    assert procs.wait_until(lambda: len(partial.payloads()) >= 50, timeout=30)
    assert len(partial.payloads()) <= 50  # the window: nothing more until acknowledgements come
    partial.close()
    rest = Subscriber(broker.port, "bridge-c", auto_ack=True)
    assert procs.wait_until(lambda: rest.payloads() == sent, timeout=60)
    rest.close()
