"""What the MQTT broker tells about itself at start, and whether it would drop queued readings.

- `broker_version`: the retained `$SYS/broker/version` (Mosquitto, and brokers that mimic it);
  None when the broker publishes none or denies `$SYS` to this user.
- `queue_selftest` (opt-in: GRIDMON_BROKER_SELFTEST, it publishes a burst to the broker): a
  throwaway persistent session (client id `gridmon-selftest-<random>`) subscribes to its own topic
  and goes away; `messages` (default 1,100: more than the 1,000 a stock Mosquitto, EMQX, HiveMQ
  CE or VerneMQ queue per client) QoS 1 messages are published to it; the session comes back and
  counts what the broker kept. Fewer than published means a bridge that is down for a burst
  loses readings: the warning names the setting to change (docs/broker.md). The session is
  removed afterwards (a clean reconnect).
`check_broker` runs both and logs the outcome; it never raises (a start must not fail on it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gridmon.config import Settings

log = logging.getLogger(__name__)

VERSION_TOPIC = "$SYS/broker/version"
SELFTEST_MESSAGES = 1100
LOSSLESS_SETTINGS = (
    "Mosquitto: max_queued_messages 0 (and max_queued_bytes 0); EMQX: mqtt.max_mqueue_len; "
    "HiveMQ CE: <queued-messages><max-queue-size>; VerneMQ: max_offline_messages = -1 (docs/broker.md)"
)


@dataclass(frozen=True, slots=True)
class SelfTest:
    """How many of `published` queued messages the broker delivered to the returning session."""

    published: int
    received: int

    @property
    def lossless(self) -> bool:
        return self.received >= self.published


def _client(settings: Settings, client_id: str, *, clean: bool) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean)
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
    return client


def _connected(settings: Settings, client: mqtt.Client, timeout: float) -> bool:
    ready = threading.Event()
    client.on_connect = lambda *_args: ready.set()
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    client.loop_start()
    return ready.wait(timeout)


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def broker_version(settings: Settings, timeout: float = 1.0) -> str | None:
    """The broker's `$SYS/broker/version`, or None within `timeout`."""
    got: list[str] = []
    done = threading.Event()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        got.append(message.payload.decode("utf-8", "replace")[:200])
        done.set()

    client = _client(settings, f"gridmon-version-{uuid.uuid4().hex[:8]}", clean=True)
    client.on_message = on_message
    try:
        if not _connected(settings, client, timeout):
            return None
        client.subscribe(VERSION_TOPIC, qos=0)
        done.wait(timeout)
    finally:
        _close(client)
    return got[0] if got else None


def queue_selftest(settings: Settings, messages: int = SELFTEST_MESSAGES, timeout: float = 30.0) -> SelfTest:
    """Publish `messages` to an absent persistent session and count what it receives back."""
    token = uuid.uuid4().hex[:12]
    client_id, topic = f"gridmon-selftest-{token}", f"gridmon/selftest/{token}"
    received: set[bytes] = set()
    last = [time.monotonic()]

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        received.add(bytes(message.payload))
        last[0] = time.monotonic()

    probe = _client(settings, client_id, clean=False)
    if not _connected(settings, probe, timeout):
        raise ConnectionError(f"MQTT broker {settings.mqtt_host}:{settings.mqtt_port} did not accept the self-test")
    probe.subscribe(topic, qos=1)
    time.sleep(0.2)  # the SUBACK
    _close(probe)

    sender = _client(settings, f"{client_id}-pub", clean=True)
    sender.max_inflight_messages_set(100)
    if not _connected(settings, sender, timeout):
        raise ConnectionError("MQTT broker did not accept the self-test publisher")
    infos = [sender.publish(topic, str(k).encode(), qos=1) for k in range(messages)]
    for info in infos:
        info.wait_for_publish(timeout)
    _close(sender)

    back = _client(settings, client_id, clean=False)
    back.on_message = on_message
    try:
        if not _connected(settings, back, timeout):
            raise ConnectionError("MQTT broker did not accept the self-test session back")
        last[0] = time.monotonic()
        deadline = time.monotonic() + timeout
        while len(received) < messages and time.monotonic() < deadline and time.monotonic() - last[0] < 2.0:
            time.sleep(0.05)
    finally:
        _close(back)
    cleanup = _client(settings, client_id, clean=True)  # a clean connect removes the session
    if _connected(settings, cleanup, timeout):
        _close(cleanup)
    return SelfTest(messages, len(received))


def check_broker(settings: Settings, *, selftest: bool) -> SelfTest | None:
    """Log the broker's version and, with `selftest`, whether it keeps a burst for an absent
    session (a warning with the setting to change when not). Never raises."""
    try:
        version = broker_version(settings)
        where = f"{settings.mqtt_host}:{settings.mqtt_port}"
        if version:
            log.info("MQTT broker %s version=%s", where, version)
        else:
            log.info("MQTT broker %s does not publish %s (version unknown)", where, VERSION_TOPIC)
        if not selftest:
            return None
        result = queue_selftest(settings)
    except Exception as exc:  # a check, never a reason not to start
        log.warning("MQTT broker check failed: %s", exc)
        return None
    if result.lossless:
        log.info(
            "MQTT broker self-test: %d of %d queued messages kept for an absent session",
            result.received,
            result.published,
        )
    else:
        log.warning(
            "MQTT broker self-test: only %d of %d queued messages kept for an absent session; the broker "
            "drops readings while the bridge is down. Set %s",
            result.received,
            result.published,
            LOSSLESS_SETTINGS,
        )
    return result
