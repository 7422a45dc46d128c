"""Per-device MQTT identity (issue 13), against a real Mosquitto running the deploy configuration
(`deploy/mosquitto/mosquitto.conf` and `acl`, on a free port): a device publishes only to its
own topic and cannot read the fleet, the bridge only reads, `gridmon devices credentials` makes
and revokes logins, and oversized packets are refused."""

from __future__ import annotations

import getpass
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridmon.cli.devices import devices as cli
from gridmon.cli.devices import set_password
from gridmon.config import REPO_ROOT
from gridmon.services.mosquitto import free_port, wait_for_port

BRIDGE = "bridge@gridmon"
DEPLOY = REPO_ROOT / "deploy" / "mosquitto"

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
                                reason="needs the mosquitto binary")


class Broker:
    def __init__(self, port: int, workdir: Path, proc: subprocess.Popen[bytes]) -> None:
        self.port, self.workdir, self.proc = port, workdir, proc
        self.passwords = workdir / "passwd"

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)  # mosquitto rereads its files on its next loop turn


def deploy_config(port: int, workdir: Path) -> str:
    """The deploy mosquitto.conf with only what must differ here changed: one local listener on
    `port`, files under `workdir`."""
    out = []
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if line == "listener 1883":
            line = f"listener {port} 127.0.0.1"
        elif key in ("listener", "protocol"):  # the websockets listener
            continue
        elif key == "password_file":
            line = f"password_file {workdir / 'passwd'}"
        elif key == "acl_file":
            line = f"acl_file {DEPLOY / 'acl'}"
        elif key == "persistence_location":
            line = f"persistence_location {workdir}/"
        out.append(line)
    # Started as root, mosquitto would switch to its own user, who cannot read pytest's
    # private directories: stay the test's user.
    out.append(f"user {getpass.getuser()}")
    return "\n".join(out) + "\n"


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Broker]:
    port = free_port()
    set_password(tmp_path / "passwd", BRIDGE, "bridge-secret-0123456789")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(deploy_config(port, tmp_path))
    log = (tmp_path / "mosquitto.log").open("ab")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    try:
        assert wait_for_port(port), (tmp_path / "mosquitto.log").read_text()
        yield Broker(port, tmp_path, proc)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def credentials(broker: Broker, action: str, device: str) -> str:
    result = CliRunner().invoke(
        cli, ["credentials", action, device, "--password-file", str(broker.passwords)]
    )
    assert result.exit_code == 0, result.output
    return result.output


def add_device(broker: Broker, device: str) -> str:
    output = credentials(broker, "add", device)
    [password] = [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("password: ")]
    broker.reload()
    return password


def connect(broker: Broker, user: str | None, password: str | None, *, accepted: bool = True) -> Client:
    """A client connected with these credentials, once the broker (after a reload) treats them as
    expected: connect again until it is `accepted` (or refused), for up to ten seconds."""
    deadline = time.monotonic() + 10
    while True:
        client = Client(broker, user, password)
        if (client.refused is None) == accepted or time.monotonic() > deadline:
            return client
        client.close()
        time.sleep(0.1)


class Client:
    """A connected MQTT 5 client that records what it receives."""

    def __init__(self, broker: Broker, user: str | None, password: str | None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.suback: list[int] = []
        self.puback: dict[int, int] = {}
        self.connected = threading.Event()
        self.refused: int | None = None
        self._got = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.disconnects = 0
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.connected.wait(5)

    def _on_connect(self, _c, _u, _f, reason, _p) -> None:
        if reason.is_failure:
            self.refused = reason.value
        self.connected.set()

    def _on_disconnect(self, *_args) -> None:
        self.disconnects += 1

    def _on_message(self, _c, _u, msg) -> None:
        with self._got:
            self.received.append((msg.topic, msg.payload))
            self._got.notify_all()

    def _on_subscribe(self, _c, _u, _mid, reasons, _p) -> None:
        with self._got:
            self.suback = [r.value for r in reasons]
            self._got.notify_all()

    def _on_publish(self, _c, _u, mid, reason, _p) -> None:
        with self._got:
            self.puback[mid] = reason.value
            self._got.notify_all()

    def subscribe(self, topic: str) -> list[int]:
        with self._got:
            self.client.subscribe(topic, qos=1)
            assert self._got.wait_for(lambda: self.suback, timeout=5)
            return self.suback

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish QoS 1 and wait for the PUBACK; returns its reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self._got:
            assert self._got.wait_for(lambda: info.mid in self.puback, timeout=5)
            return self.puback[info.mid]

    def wait_for(self, payload: bytes) -> None:
        with self._got:
            assert self._got.wait_for(lambda: any(p == payload for _, p in self.received), timeout=5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_device_publishes_only_as_itself_and_cannot_read_the_fleet(broker: Broker) -> None:
    bridge = Client(broker, BRIDGE, "bridge-secret-0123456789")
    meter_a = connect(broker, "meter-a", add_device(broker, "meter-a"))
    password_b = add_device(broker, "meter-b")
    try:
        assert bridge.refused is None and meter_a.refused is None
        assert bridge.subscribe("grid/sensors/#") == [1]  # granted QoS 1

        # Its own topic: delivered. Another device's topic: refused (0x87) and never delivered.
        assert meter_a.publish("grid/sensors/meter-b", b"forged") == 0x87
        assert meter_a.publish("grid/sensors/meter-a/extra", b"sub-level") == 0x87
        assert meter_a.publish("grid/sensors/meter-a", b"own") == 0
        bridge.wait_for(b"own")  # same connection, QoS 1: anything published before it came first
        assert [p for _, p in bridge.received] == [b"own"]
        bridge.received.clear()

        # A device cannot read the fleet: Mosquitto grants the subscription (a filter may match
        # topics one can read) but delivers nothing the ACL does not let it read.
        meter_a.subscribe("grid/sensors/#")
        meter_a.suback = []
        meter_a.subscribe("grid/sensors/meter-b")
        meter_b = connect(broker, "meter-b", password_b)
        assert meter_b.publish("grid/sensors/meter-b", b"b-own") == 0
        bridge.wait_for(b"b-own")
        # A PUBACK comes after anything the broker had already sent meter-a on that connection.
        assert meter_a.publish("grid/sensors/meter-a", b"sync") == 0
        assert meter_a.received == []
        meter_b.close()
        fresh = Client(broker, "meter-b", None)  # no password: refused outright
        assert fresh.refused is not None
        fresh.close()

        # The bridge reads but cannot write.
        assert bridge.publish("grid/sensors/meter-a", b"from the bridge") == 0x87
    finally:
        for client in (bridge, meter_a):
            client.close()


def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    connect(broker, "meter-c", add_device(broker, "meter-c")).close()
    for user, password in ((None, None), ("meter-c", "wrong-password"), ("nobody", "x")):
        client = Client(broker, user, password)
        assert client.refused is not None, user
        client.close()


def test_revoked_credentials_are_cut_off_at_the_reload(broker: Broker) -> None:
    password = add_device(broker, "meter-r")
    first = connect(broker, "meter-r", password)
    assert first.refused is None
    assert "revoked meter-r" in credentials(broker, "revoke", "meter-r")
    broker.reload()
    assert _wait(lambda: first.disconnects > 0)  # the open connection is cut at the reload
    first.close()
    again = connect(broker, "meter-r", password, accepted=False)
    assert again.refused is not None
    again.close()
    # Revoking a login that does not exist says so.
    result = CliRunner().invoke(
        cli, ["credentials", "revoke", "meter-r", "--password-file", str(broker.passwords)]
    )
    assert result.exit_code == 1


@pytest.mark.parametrize("device", ["..", "a/b", "meter+1", "#", "x" * 65])
def test_credentials_are_made_for_device_ids_only(tmp_path: Path, device: str) -> None:
    result = CliRunner().invoke(
        cli, ["credentials", "add", device, "--password-file", str(tmp_path / "passwd")]
    )
    assert result.exit_code == 2 and "is not a device id" in result.output, result.output
    assert not (tmp_path / "passwd").exists()


def test_an_oversized_packet_is_refused_by_the_broker(broker: Broker) -> None:
    bridge = Client(broker, BRIDGE, "bridge-secret-0123456789")
    meter = connect(broker, "meter-big", add_device(broker, "meter-big"))
    try:
        bridge.subscribe("grid/sensors/#")
        meter.client.publish("grid/sensors/meter-big", b"x" * 200_000, qos=1)
        # The broker closes a connection that sends more than max_packet_size (paho reconnects).
        assert _wait(lambda: meter.disconnects > 0)
        assert not any(len(p) > 131072 for _, p in bridge.received)
    finally:
        bridge.close()
        meter.close()


def test_the_bridge_announces_its_maximum_packet_size() -> None:
    from gridmon.bridge.mqtt import session_properties
    from gridmon.config import Settings

    props = session_properties(Settings())
    assert isinstance(props, Properties) and props.packetType == PacketTypes.CONNECT
    assert getattr(props, "MaximumPacketSize") == Settings().mqtt_max_packet_bytes  # noqa: B009
    conf = (DEPLOY / "mosquitto.conf").read_text()
    assert f"max_packet_size {Settings().mqtt_max_packet_bytes}" in conf


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
