"""The bridge process: MQTT subscription → validation → micro-batches → Celery ingest task.

Thin by design: decode and validate (`gridmon.domain.readings`), batch (`Batcher`), hand off
(`workers.ingest.ingest_batch`), acknowledge, count. Nothing here touches the database.

- QoS 1 subscription on a persistent session (MQTT 5 session expiry, or clean_session=False on
  3.1.1) with manual acknowledgement: readings published while the bridge is down are delivered
  when it returns, and a reading is acknowledged only after its batch reached the Celery broker.
- Bad payloads travel in the same batch as dead letters, so they are recorded, never dropped.
- SIGTERM/SIGINT: take what is already arriving until the stream pauses (at most
  `STOP_SETTLE_MAX_S`), then stop taking messages, hand over and acknowledge the pending batch,
  disconnect. Messages that arrive after that stay unacknowledged and are redelivered next time.
- Heartbeat: while connected, a key with a TTL for /ready, and the pipeline's "alive" mark, from
  which a gap in listening (a restart, a broker outage) is recorded as a pipeline outage
  (`gridmon.heartbeat.mark_alive`): silence inside it is not blamed on the devices.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from kombu.exceptions import OperationalError as BrokerError

from gridmon import metrics, tracing
from gridmon.bridge.batcher import Ack, Batch, Batcher
from gridmon.bridge.broker_check import check_broker
from gridmon.bridge.mqtt import make_client, session_properties
from gridmon.bridge.sparkplug import SparkplugHandler
from gridmon.config import Settings, get_settings
from gridmon.domain.readings import UNPARSEABLE, Reading, Rejection, parse_reading
from gridmon.domain.sparkplug import NAMESPACE, subscriptions
from gridmon.domain.wire import encode_dead
from gridmon.heartbeat import BRIDGE, bridge_key, mark_alive, write_heartbeat

log = logging.getLogger(__name__)

INGEST_TASK = "workers.ingest.ingest_batch"
STOP_SETTLE_QUIET_S = 0.2  # on stop, a pause this long means nothing more is on its way…
STOP_SETTLE_MAX_S = 2.0  # …and a stream that never pauses is cut after this long


class Bridge:
    """One MQTT subscription feeding the ingest task."""

    def __init__(self, settings: Settings, client_id: str | None = None):
        from gridmon.celery import app

        self.settings = settings
        self.client_id = client_id or settings.mqtt_client_id
        self._app = app
        self._metrics = metrics.bridge()
        self._metrics.connected.set_function(lambda: 1.0 if self.healthy() else 0.0)
        self._client = make_client(settings, self.client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.fast_handler = self._on_publish
        self._generation = 0  # bumped per connection: ids of an old connection are never acked
        self._accepting = True
        self._last_message = time.monotonic()
        self._stop = threading.Event()
        self._batcher = Batcher(
            self._handoff,
            self._ack,
            max_items=settings.batch_max_readings,
            max_age_s=settings.batch_max_age_ms / 1000.0,
            idle_s=settings.batch_idle_ms / 1000.0,
        )
        self.handed_over = 0
        self._sparkplug = (
            SparkplugHandler(settings, self._batcher, self._publish_command, self._ack)
            if settings.sparkplug_group
            else None
        )

    # --- MQTT callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error(
                "mqtt connect refused reason=%s host=%s port=%d",
                reason,
                self.settings.mqtt_host,
                self.settings.mqtt_port,
            )
            return
        self._generation += 1
        topic = self.settings.subscription_topic
        client.subscribe(topic, qos=1)
        if self.settings.sparkplug_group:  # not shared: births and data of a node must reach one bridge
            client.subscribe([(t, 1) for t in subscriptions(self.settings.sparkplug_group)])
        log.info(
            "mqtt connected host=%s port=%d topic=%s session_present=%s client_id=%s",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            topic,
            getattr(flags, "session_present", None),
            self.client_id,
        )

    def _on_disconnect(self, _c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not self._stop.is_set():
            log.warning("mqtt connection lost reason=%s; reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        # paho's own path (QoS 2, or when the fast path is unavailable).
        self._on_publish(msg.topic, msg.payload, msg.mid, msg.qos)

    def _on_publish(self, topic: str, payload: bytes | bytearray, mid: int, qos: int) -> None:
        if not self._accepting:
            return  # shutting down: left unacknowledged, the broker redelivers it
        self._last_message = time.monotonic()
        ack: Ack | None = (self._generation, mid, qos) if qos else None
        now = time.time()
        if self._sparkplug is not None and topic.startswith(NAMESPACE):
            self._sparkplug.handle(topic, payload, ack, now)
            return
        result: Reading | Rejection
        try:
            result = parse_reading(
                topic,
                payload,
                now,
                max_payload_bytes=self.settings.max_payload_bytes,
                max_future_s=self.settings.max_future_s,
                topic_filter=self.settings.mqtt_topic,
            )
        except Exception as exc:  # never let one payload stop the network thread
            log.exception("validation failed unexpectedly topic=%s", topic)
            result = Rejection(UNPARSEABLE, f"validation failed: {exc!r}"[:300])
        if isinstance(result, Rejection):
            self._metrics.validation_errors.inc()
            self._metrics.dead_letters.labels(result.reason).inc()
            # debug: a broken sensor can send thousands a second; each is counted and stored.
            log.debug("payload rejected reason=%s topic=%s detail=%s", result.reason, topic, result.detail)
            keep = self.settings.dead_letter_payload_bytes  # a 1 MB payload travels as its prefix
            self._batcher.add_dead(encode_dead(now, topic, bytes(payload), result, keep_bytes=keep), ack)
        else:
            # plain tuple: orjson encodes it natively; no trailing seq when the payload had none
            self._batcher.add_reading(result[:6] if result.seq is None else tuple(result), ack)

    def _publish_command(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=0)  # Sparkplug commands are QoS 0

    # --- flusher thread ----------------------------------------------------------------------
    def _handoff(self, batch: Batch) -> None:
        """Publish the batch to the Celery broker; on broker errors retry until it is accepted."""
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                with tracing.span("bridge.handoff", {"gridmon.readings": len(batch.readings)}):
                    # By name: the bridge does not import the worker's database stack.
                    args = (batch.readings, batch.dead, batch.status) if batch.status else (batch.readings, batch.dead)
                    self._app.send_task(INGEST_TASK, args=args, retry=False, headers=tracing.inject_headers())
            except (BrokerError, OSError, ConnectionError) as exc:
                self._metrics.errors.inc()
                log.warning("celery broker refused batch items=%d error=%s; retrying in %.1fs", len(batch), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            took = time.monotonic() - started
            self._metrics.batches.inc()
            self._metrics.messages.inc(len(batch))
            self._metrics.batch_size.observe(len(batch))
            self._metrics.handoff_seconds.observe(took)
            self.handed_over += len(batch)
            log.debug(
                "batch handed over readings=%d dead_letters=%d handoff_ms=%.1f",
                len(batch.readings),
                len(batch.dead),
                took * 1000,
            )
            return

    def _ack(self, acks: list[Ack]) -> None:
        generation = self._generation
        # Ids from an earlier connection are not acknowledged: the broker redelivers those
        # messages on the new connection, and the second copy is stored once (primary key).
        current = [(mid, qos) for gen, mid, qos in acks if gen == generation]
        self._client.ack_many(current)
        stale = len(acks) - len(current)
        if stale:
            log.info("acks skipped after reconnect count=%d (messages will be redelivered)", stale)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (retrying in the background) and start the network and flusher threads."""
        self._batcher.start()
        self._client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=self.settings.mqtt_keepalive_s,
            clean_start=False,
            properties=session_properties(self.settings),
        )
        self._client.loop_start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Graceful stop: take what is already arriving, hand over and acknowledge what is
        buffered, mark the moment the pipeline stops listening, then disconnect."""
        self._stop.set()
        self._settle()
        self._accepting = False
        flushed = self._batcher.close(timeout)
        if self.healthy():  # the last moment this bridge listened: where a gap would begin
            mark_alive(time.time(), self.client_id, self.settings.pipeline_gap_s)
        deadline = time.monotonic() + 5.0
        while self._client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)  # the network thread writes the queued PUBACKs before DISCONNECT
        self._client.disconnect()
        self._client.loop_stop()
        log.info("bridge stopped flushed=%s handed_over=%d", flushed, self.handed_over)
        return flushed

    def _settle(self) -> None:
        """Wait until no message arrived for `STOP_SETTLE_QUIET_S` (at most `STOP_SETTLE_MAX_S`):
        readings the broker is already delivering are stored now rather than at the next start."""
        deadline = time.monotonic() + STOP_SETTLE_MAX_S
        while self.healthy() and time.monotonic() < deadline:
            if time.monotonic() - self._last_message >= STOP_SETTLE_QUIET_S:
                return
            time.sleep(0.02)

    def request_stop(self) -> None:
        """Ask `wait()` to return (signal handlers call this)."""
        self._stop.set()

    def healthy(self) -> bool:
        """Connected to MQTT with a live network thread (what the heartbeat vouches for)."""
        thread = getattr(self._client, "_thread", None)
        return self._client.is_connected() and thread is not None and thread.is_alive()

    def heartbeat(self) -> None:
        # Written only while the bridge can actually move readings, so /ready sees a dead bridge.
        if self.healthy():
            now = time.time()
            write_heartbeat(bridge_key(self.client_id), now, BRIDGE)
            mark_alive(now, self.client_id, self.settings.pipeline_gap_s)

    def wait(self) -> None:
        """Block until stop is requested, writing the heartbeat meanwhile."""
        interval = self.settings.heartbeat_interval_s
        while not self._stop.wait(interval):
            self.heartbeat()
            if self._sparkplug is not None:
                self._sparkplug.expire(time.time())


# The network thread is CPU-bound; the flusher thread mostly waits on the Celery broker's socket
# and must win the GIL back quickly after each reply. With CPython's default 5 ms switch interval
# a hand-off of 1,000 readings took 10–30 ms (several socket round trips, each waiting up to 5 ms
# for the GIL); at 0.5 ms it takes a few.
GIL_SWITCH_INTERVAL_S = 0.0005


def run(client_id: str | None = None) -> int:
    """Run a bridge until SIGTERM/SIGINT. Returns the process exit code."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    settings = get_settings()
    tracing.setup("gridmon-bridge")
    if settings.bridge_metrics_port:
        metrics.serve(settings.bridge_metrics_port)
    bridge = Bridge(settings, client_id)

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received signal=%s; stopping", signal.Signals(signum).name)
        bridge.request_stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info(
        "bridge starting mqtt=%s:%d topic=%s batch_max=%d batch_age_ms=%d",
        settings.mqtt_host,
        settings.mqtt_port,
        settings.subscription_topic,
        settings.batch_max_readings,
        settings.batch_max_age_ms,
    )
    check_broker(settings, selftest=settings.broker_selftest)
    bridge.start()
    bridge.heartbeat()
    bridge.wait()
    flushed = bridge.stop()
    tracing.shutdown()
    return 0 if flushed else 1
