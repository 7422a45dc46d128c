"""The embedded MQTT broker: amqtt in its own process, made lossless for a persistent QoS 1 session.

Run as `python -m gridmon.services.embedded_mqtt --port P --password-file F`; `gridmon up` does
this in embedded mode (see `embedded.py`). amqtt speaks MQTT 3.1.1 only, so embedded mode runs
the bridge with `GRIDMON_MQTT_PROTOCOL=4` (`clean_session=False`).

amqtt 0.12.1 loses QoS 1 messages to a persistent subscriber that acknowledges by hand, as the
bridge does, in three ways (seen here with a paho client; the tests below fail without the fix):

1. A PUBACK that comes later than 5 s: the broker gives up, forgets the message and never sends
   it again (the bridge acknowledges only after the Celery broker took the batch, which can take
   longer when Redis or the bridge is busy).
2. The subscriber disconnects with messages unacknowledged: the broker cancels their waiters and
   forgets them instead of resending them on reconnect, as MQTT 3.1.1 §4.4 requires.
3. More than 65,535 messages in flight (a large backlog replayed at reconnect): the excess fails
   with "no free packet ID" and is dropped.

`LosslessBrokerHandler` replaces only the outgoing QoS 1 flow: a message stays in the session's
in-flight table until its PUBACK arrives, however long that takes; on disconnect it stays there
and is resent (DUP) when the client comes back; at most `MAX_INFLIGHT` are in flight, the rest
wait in a queue kept on the session. It relies on amqtt internals of the pinned version;
`tests/test_embedded_mqtt.py` checks the three cases against the real broker. Sessions live in
memory: what is queued for an absent bridge is lost if the broker itself stops (`gridmon up`
stops the simulator first and the bridge drains before the broker goes).

Anonymous sessions are never queued by amqtt while offline, so the broker requires a user name
and password (argon2 hash in the password file); embedded mode hands them to the bridge and the
simulator through GRIDMON_MQTT_USERNAME / GRIDMON_MQTT_PASSWORD.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import sys
from collections import deque
from pathlib import Path
from typing import Any

from gridmon.services.embedded_proc import EmbeddedError, ServerProcess, pick_port, read_or_create_secret

log = logging.getLogger(__name__)

# Like the project's mosquitto.conf (`max_inflight_messages 20000`): below the 16-bit packet-id space.
MAX_INFLIGHT = 20000
DEFAULT_PORT = 11883
OUTBOX_KEY = "gridmon.outbox"


def _install_lossless_handler(max_inflight: int = MAX_INFLIGHT) -> None:
    """Make the broker build `LosslessBrokerHandler`s (amqtt.broker looks the class up by name)."""
    import amqtt.broker
    from amqtt.mqtt.constants import QOS_1
    from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
    from amqtt.mqtt.puback import PubackPacket
    from amqtt.session import OUTGOING, OutgoingApplicationMessage, Session

    def outbox(session: Session) -> deque[tuple[str, bytes | bytearray, bool]]:
        """Messages waiting for an in-flight slot; kept on the session, so they survive reconnects."""
        box = session.attributes.get(OUTBOX_KEY)
        if box is None:
            box = session.attributes[OUTBOX_KEY] = deque()
        return box

    class LosslessBrokerHandler(BrokerProtocolHandler):
        """Outgoing QoS 1 without timeouts, forgetting or overflow; see the module docstring."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._stopped = False
            self._sends: set[asyncio.Task[None]] = set()

        async def stop(self) -> None:
            self._stopped = True
            await super().stop()

        async def mqtt_publish(
            self, topic: str, data: bytes | bytearray, qos: int | None, retain: bool, ack_timeout: int | None = None
        ) -> OutgoingApplicationMessage:
            if qos != QOS_1 or self.session is None:
                return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)
            session = self.session
            if self._stopped or outbox(session) or len(session.inflight_out) >= max_inflight:
                # No slot (case 3) or no connection: queue it; `_pump` sends it when a slot frees.
                outbox(session).append((topic, data, retain))
                return OutgoingApplicationMessage(None, topic, qos, data, retain)
            message = self._take_slot(session, topic, data, retain)
            await self._handle_qos1_message_flow(message)
            return message

        @staticmethod
        def _take_slot(session: Session, topic: str, data: bytes | bytearray, retain: bool) -> Any:
            packet_id = session.next_packet_id
            message = OutgoingApplicationMessage(packet_id, topic, QOS_1, data, retain)
            # Held by the session from here on: resent on reconnect until acknowledged.
            session.inflight_out[packet_id] = message
            return message

        def _send_in_background(self, message: Any) -> None:
            task = asyncio.create_task(self._handle_message_flow(message))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

        def _pump(self) -> None:
            """Move queued messages into free in-flight slots."""
            session = self.session
            if session is None or self._stopped:
                return
            box = outbox(session)
            while box and len(session.inflight_out) < max_inflight:
                self._send_in_background(self._take_slot(session, *box.popleft()))

        async def _handle_qos1_message_flow(self, app_message: Any) -> None:
            if app_message.direction != OUTGOING:
                await super()._handle_qos1_message_flow(app_message)
                return
            session = self.session
            assert session is not None and app_message.packet_id is not None
            packet_id = app_message.packet_id
            session.inflight_out[packet_id] = app_message
            if self._stopped:
                return  # connection gone: the next connection resends it
            waiter: asyncio.Future[PubackPacket] = asyncio.get_running_loop().create_future()
            # Registered before sending, so a fast PUBACK cannot arrive before its waiter.
            self._puback_waiters[packet_id] = waiter
            try:
                packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
                await self._send_packet(packet)
                app_message.publish_packet = packet
                app_message.puback_packet = await waiter  # no timeout (case 1)
            except (asyncio.CancelledError, Exception):
                # Disconnected (stop() cancels the waiters) or the write failed: the message
                # stays in the session for the next connection (case 2).
                return
            finally:
                if self._puback_waiters.get(packet_id) is waiter:
                    del self._puback_waiters[packet_id]
            session.inflight_out.pop(packet_id, None)
            self._pump()

        async def _retry_deliveries(self) -> None:
            """Resend what the last connection left unacknowledged, then queued messages; no waiting."""
            if self.session is None:
                return
            for message in list(self.session.inflight_out.values()):
                self._send_in_background(message)
            self._pump()

    amqtt.broker.BrokerProtocolHandler = LosslessBrokerHandler


def write_password_file(path: Path, username: str, password: str) -> None:
    """An amqtt FileAuthPlugin password file (argon2 hash), readable by the owner only."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(f"{username}:{PasswordHash((Argon2Hasher(),)).hash(password)}\n")


def broker_config(bind: str, port: int, password_file: Path) -> dict[str, Any]:
    """One TCP listener; user/password required (see the module docstring); no $SYS, no packet log."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_file)}},
    }


async def serve(config: dict[str, Any], max_inflight: int = MAX_INFLIGHT) -> None:
    """Run the broker until SIGTERM/SIGINT, then shut it down cleanly."""
    from amqtt.broker import Broker

    _install_lossless_handler(max_inflight)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(config)
    await broker.start()
    # The parent waits for this line (a probe connection would be logged by amqtt as an error).
    log.info("embedded mqtt broker listening bind=%s pid=%d", config["listeners"]["default"]["bind"], os.getpid())
    await stop.wait()
    log.info("embedded mqtt broker stopping")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(broker.shutdown(), timeout=10)


class EmbeddedMqtt(ServerProcess):
    """The broker process on 127.0.0.1:<port>; user `gridmon` with a generated password."""

    USERNAME = "gridmon"

    def __init__(self, data_dir: Path, port: int = DEFAULT_PORT):
        super().__init__("mqtt", data_dir / "mqtt", port)
        self.password = ""
        self._log_offset = 0

    @property
    def where(self) -> str:
        return f"mqtt://127.0.0.1:{self.port} (amqtt, MQTT 3.1.1, user {self.USERNAME})"

    def start(self) -> EmbeddedMqtt:
        if importlib.util.find_spec("amqtt") is None:
            raise EmbeddedError("embedded mode needs the 'amqtt' package (make install, or pip install amqtt)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # data and password files: ours only
        self.clear_stale()
        self.password = read_or_create_secret(self.directory / "password")
        password_file = self.directory / "passwd"
        write_password_file(password_file, self.USERNAME, self.password)
        self.port = pick_port(self.port)
        args = [sys.executable, "-m", "gridmon.services.embedded_mqtt", "--port", str(self.port)]
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self.spawn([*args, "--password-file", str(password_file)], ready=self._listening)
        log.info("embedded mqtt broker started port=%d pid=%s dir=%s", self.port, self.pid, self.directory)
        return self

    def _listening(self) -> bool:
        marker = f"listening bind=127.0.0.1:{self.port} pid={self.pid}".encode()
        with self.log_file.open("rb") as fh:
            fh.seek(self._log_offset)  # this run's lines only (the log is appended to across runs)
            return marker in fh.read()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="gridmon's embedded MQTT broker (amqtt)")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--max-inflight", type=int, default=MAX_INFLIGHT, help="unacknowledged QoS 1 per client")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # amqtt logs every connection at INFO; warnings are what matter in the log file.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    asyncio.run(serve(broker_config(args.bind, args.port, args.password_file), args.max_inflight))


if __name__ == "__main__":
    main()
