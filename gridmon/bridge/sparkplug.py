"""The bridge's Sparkplug B host side: births, aliases, data, deaths and rebirth requests.

Runs on the bridge's network thread (one `handle` per MQTT message, under a lock that `expire`
shares from the main thread) and feeds the same batcher as JSON readings, so every message is
acknowledged only after what it became reached the Celery broker:
- NBIRTH/DBIRTH: the birth certificate's metrics define the node's or device's aliases and
  datatypes and their current values; the birth itself is a reading when it carries voltage,
  current and temperature; it becomes a `birth` status event (resolves the device's `no_data`
  alert). The node's `bdSeq` is kept to recognise its death certificate.
- NDATA/DDATA: metrics by name or alias update the last known values (Sparkplug reports by
  exception, so a message may carry one metric) and become one reading with the payload's
  timestamp and `seq`. Data using an alias the bridge has no birth for (the bridge started after
  the birth, or the node changed its aliases) is held, unacknowledged, and the edge node is
  asked for a rebirth (NCMD `Node Control/Rebirth`, at most every `REBIRTH_INTERVAL_S`); the
  births that follow release it, decoded with the new aliases. Held data whose birth does not
  come within `sparkplug_birth_timeout_s` is dead-lettered (`sparkplug_no_birth`): never lost.
- DDEATH/NDEATH: a `death` status event (opens a `no_data` alert); an NDEATH whose `bdSeq`
  differs from the current NBIRTH's is a stale will message of an earlier session and ignored.
- A payload that is not Sparkplug B protobuf, or a topic that is not a Sparkplug data topic, is
  dead-lettered (`sparkplug_malformed`) with its exact bytes.
The mapping of metric names onto reading fields is `gridmon.domain.sparkplug.field_for`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from gridmon import metrics
from gridmon.bridge.batcher import Ack, Batcher
from gridmon.config import Settings
from gridmon.domain import sparkplug as spb
from gridmon.domain.readings import (
    MISSING_FIELD,
    SPARKPLUG_MALFORMED,
    SPARKPLUG_NO_BIRTH,
    Rejection,
    reading_from_values,
)
from gridmon.domain.wire import encode_dead, encode_status

log = logging.getLogger(__name__)

REBIRTH_INTERVAL_S = 5.0
_TOPIC_CACHE = 100_000
_FLUSH_EVERY = 256
MAX_HELD = 10_000  # held messages per node or device; beyond, they are dead-lettered at once

Key = tuple[str, str, str | None]  # (group, node, device or None for the node itself)
Raw = bytes | bytearray  # an MQTT payload as the client hands it over


@dataclass
class _Entity:
    """What a birth certificate said about a node or device, and its last known values."""

    aliases: dict[int, tuple[str | None, int]] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class _Held:
    received_at: float
    topic: str
    payload: bytes
    ack: Ack | None


class SparkplugHandler:
    """Sparkplug B state of one bridge (per connection session; rebuilt from births after a restart)."""

    def __init__(
        self,
        settings: Settings,
        batcher: Batcher,
        publish: Callable[..., Any],
        ack: Callable[[list[Ack]], None],
    ) -> None:
        self._batcher = batcher
        self._publish = publish
        self._ack = ack
        self._map = dict(settings.sparkplug_metric_map)
        self._max_future_s = settings.max_future_s
        self._timeout_s = settings.sparkplug_birth_timeout_s
        self._keep_bytes = settings.dead_letter_payload_bytes
        self._metrics = metrics.bridge()
        self._lock = threading.Lock()
        self._entities: dict[Key, _Entity] = {}
        self._bd_seq: dict[tuple[str, str], int | None] = {}
        self._held: dict[Key, list[_Held]] = {}
        self._rebirth_at: dict[tuple[str, str], float] = {}
        # Hot-path caches: parsed topics (a fleet has a bounded set), counter children, one
        # reusable payload message (protobuf parses into it without allocating a new one).
        self._topics: dict[str, tuple[spb.Topic, Key]] = {}
        self._counters = {kind: self._metrics.sparkplug_messages.labels(kind) for kind in spb.DATA_TYPES}
        self._counts = dict.fromkeys(spb.DATA_TYPES, 0)  # added to the counters every _FLUSH_EVERY messages
        self._uncounted = 0
        self._message = spb.Payload()

    # --- entry points -----------------------------------------------------------------------
    def handle(self, topic: str, payload: Raw, ack: Ack | None, now: float) -> None:
        with self._lock:
            try:
                self._handle(topic, payload, ack, now)
            except Exception as exc:  # never let one payload stop the network thread
                log.exception("sparkplug handling failed unexpectedly topic=%s", topic)
                self._dead(now, topic, payload, ack, SPARKPLUG_MALFORMED, f"handling failed: {exc!r}"[:300])

    def expire(self, now: float) -> None:
        """Dead-letter held data whose birth did not come in time, and bring the message counters
        up to date (called every heartbeat)."""
        with self._lock:
            self._flush_counts()
            for key in list(self._held):
                keep = []
                for held in self._held[key]:
                    if now - held.received_at >= self._timeout_s:
                        detail = f"no birth certificate within {self._timeout_s:g} s for the aliases used"
                        self._dead(now, held.topic, held.payload, held.ack, SPARKPLUG_NO_BIRTH, detail)
                    else:
                        keep.append(held)
                if keep:
                    self._held[key] = keep
                else:
                    del self._held[key]

    # --- messages -----------------------------------------------------------------------------
    def _handle(self, topic: str, payload: Raw, ack: Ack | None, now: float) -> None:
        cached = self._topics.get(topic)
        if cached is None:
            found = spb.parse_topic(topic)
            if found is None:
                self._dead(now, topic, payload, ack, SPARKPLUG_MALFORMED, "not a Sparkplug B data topic")
                return
            if len(self._topics) >= _TOPIC_CACHE:
                self._topics.clear()
            cached = self._topics[topic] = (found, (found.group, found.node, found.device))
        parsed, key = cached
        self._counts[parsed.type] += 1
        self._uncounted += 1
        if self._uncounted >= _FLUSH_EVERY:
            self._flush_counts()
        # Reused: a birth re-handles its held messages only after it is done with its own.
        message = self._message
        try:
            message.ParseFromString(payload)
        except DecodeError as exc:
            self._dead(now, topic, payload, ack, SPARKPLUG_MALFORMED, f"not a Sparkplug B payload: {exc}"[:300])
            return
        kind = parsed.type
        if kind == "DDATA" or kind == "NDATA":
            if not self._data(parsed, key, message, topic, payload, ack, now):
                self._hold(parsed, key, topic, bytes(payload), ack, now)
        elif kind == "DBIRTH" or kind == "NBIRTH":
            self._birth(parsed, key, message, topic, payload, ack, now)
        else:
            self._death(parsed, key, message, ack, now)

    def _birth(
        self, parsed: spb.Topic, key: Key, message: Any, topic: str, payload: Raw, ack: Ack | None, now: float
    ) -> None:
        entity = _Entity()
        for metric in message.metrics:
            if not metric.name:
                continue
            target = spb.field_for(metric.name, self._map)
            entity.datatypes[metric.name] = metric.datatype
            if metric.HasField("alias"):
                entity.aliases[int(metric.alias)] = (target, metric.datatype)
            value = spb.number(metric, metric.datatype)
            if target is not None and value is not None:
                entity.values[target] = value
        self._entities[key] = entity
        scope = "device" if parsed.device is not None else "node"
        if scope == "node":
            self._bd_seq[(parsed.group, parsed.node)] = spb.metric_int(message, spb.BD_SEQ)
        ts = _timestamp(message, now)
        status = encode_status(ts, "birth", scope, parsed.device_id)
        reading = self._reading(parsed, entity.values, message, now) if entity.values else None
        if isinstance(reading, Rejection) and reading.reason != MISSING_FIELD:
            self._batcher.add_status(status, None)  # a birth with impossible values: recorded
            self._dead(now, topic, payload, ack, reading.reason, reading.detail)
        elif reading is None or isinstance(reading, Rejection):
            self._batcher.add_status(status, ack)  # a birth without the three core metrics is no reading
        else:
            self._batcher.add_status(status, None)
            self._batcher.add_reading(reading, ack)
        # A fleet restarting sends thousands of DBIRTHs: node births at info, device births at debug.
        log.log(logging.INFO if scope == "node" else logging.DEBUG, "sparkplug %s topic=%s aliases=%d",
                parsed.type, topic, len(entity.aliases))
        for held in self._held.pop(key, []):
            self._handle(held.topic, held.payload, held.ack, now)

    def _death(self, parsed: spb.Topic, key: Key, message: Any, ack: Ack | None, now: float) -> None:
        ts = _timestamp(message, now)
        if parsed.device is not None:
            self._entities.pop(key, None)
            self._batcher.add_status(encode_status(ts, "death", "device", parsed.device_id), ack)
            return
        node = (parsed.group, parsed.node)
        known = self._bd_seq.get(node)
        dying = spb.metric_int(message, spb.BD_SEQ)
        if known is not None and dying is not None and dying != known:
            log.info("sparkplug stale NDEATH ignored node=%s bdSeq=%s current=%s", parsed.node, dying, known)
            if ack is not None:
                self._ack([ack])
            return
        self._bd_seq.pop(node, None)
        for other in [k for k in self._entities if k[:2] == node]:
            del self._entities[other]
        self._batcher.add_status(encode_status(ts, "death", "node", parsed.node), ack)

    def _data(
        self, parsed: spb.Topic, key: Key, message: Any, topic: str, payload: Raw, ack: Ack | None, now: float
    ) -> bool:
        """Turn a data message into a reading (or a dead letter); False when it must wait for a birth."""
        entity = self._entities.get(key)
        values = entity.values.copy() if entity is not None else {}
        aliases = entity.aliases if entity is not None else {}
        # Hot loop: every attribute of a protobuf message costs a C call, so each metric is read
        # as few times as possible (a set value implies is_null is false).
        for metric in message.metrics:
            name = metric.name
            if name:
                target = spb.field_for(name, self._map)
                datatype = metric.datatype or (entity.datatypes.get(name, 0) if entity else 0)
            else:
                spec = aliases.get(metric.alias)
                if spec is None:
                    return False  # an alias without its birth certificate
                target, datatype = spec
            if target is None:
                continue
            kind = metric.WhichOneof("value")
            if kind == "double_value":
                values[target] = metric.double_value
            elif kind is not None:
                value = spb.number(metric, datatype)
                if value is not None:
                    values[target] = value
        if entity is None:
            # Decodable by names, but the host has no birth: ask for one (the node's state is unknown).
            self._request_rebirth(parsed, now)
            entity = self._entities[key] = _Entity()
        reading = self._reading(parsed, values, message, now)
        if isinstance(reading, Rejection):
            self._dead(now, topic, payload, ack, reading.reason, reading.detail)
        else:
            entity.values = values
            self._batcher.add_reading(reading, ack)
        return True

    def _hold(self, parsed: spb.Topic, key: Key, topic: str, payload: bytes, ack: Ack | None, now: float) -> None:
        held = self._held.setdefault(key, [])
        if len(held) >= MAX_HELD:
            self._dead(now, topic, payload, ack, SPARKPLUG_NO_BIRTH, f"more than {MAX_HELD} messages wait for a birth")
        else:
            held.append(_Held(now, topic, payload, ack))
        self._request_rebirth(parsed, now)

    # --- helpers ------------------------------------------------------------------------------
    def _flush_counts(self) -> None:
        for kind, count in self._counts.items():
            if count:
                self._counters[kind].inc(count)
                self._counts[kind] = 0
        self._uncounted = 0

    def _reading(self, parsed: spb.Topic, values: dict[str, float], message: Any, now: float) -> Any:
        # Sparkplug's `seq` counts an edge node's messages (0-255, births included), not one
        # device's readings, so it cannot tell a device's missing readings: it is not passed on.
        ts = message.timestamp / 1000.0 if message.HasField("timestamp") else _metric_timestamp(message)
        result = reading_from_values(parsed.device_id, ts, values, now, max_future_s=self._max_future_s)
        return result if isinstance(result, Rejection) else tuple(result[:6])

    def _request_rebirth(self, parsed: spb.Topic, now: float) -> None:
        node = (parsed.group, parsed.node)
        if now - self._rebirth_at.get(node, float("-inf")) < REBIRTH_INTERVAL_S:
            return
        self._rebirth_at[node] = now
        self._publish(spb.command_topic(parsed.group, parsed.node), spb.rebirth_command(int(now * 1000)))
        self._metrics.sparkplug_rebirths.inc()
        log.info("sparkplug rebirth requested group=%s node=%s", parsed.group, parsed.node)

    def _dead(self, now: float, topic: str, payload: Raw, ack: Ack | None, reason: str, detail: str) -> None:
        self._metrics.dead_letters.labels(reason).inc()
        letter = encode_dead(now, topic, bytes(payload), Rejection(reason, detail), keep_bytes=self._keep_bytes)
        self._batcher.add_dead(letter, ack)


def _metric_timestamp(message: Any) -> float | None:
    stamps = [m.timestamp for m in message.metrics if m.HasField("timestamp")]
    return max(stamps) / 1000.0 if stamps else None


def _timestamp(message: Any, now: float) -> float:
    if message.HasField("timestamp") and message.timestamp:
        return float(message.timestamp) / 1000.0
    return now
