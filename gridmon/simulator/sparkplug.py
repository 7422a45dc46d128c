"""A simulated Sparkplug B edge node: the simulator's JSON readings as births and data by alias.

`SparkplugEdge` holds one edge node's protocol state (bdSeq, the 0–255 message sequence, which
devices were born, their last values) and turns readings into messages:
- NBIRTH first (`bdSeq`, `Node Control/Rebirth`), its NDEATH (same `bdSeq`) as the MQTT will;
- a device's first reading is its DBIRTH (names, aliases 1–3, datatype Double, values), every
  later one a DDATA carrying only aliases;
- `rebirth()` answers an NCMD `Node Control/Rebirth`: NBIRTH again, then every device's DBIRTH.
`SparkplugSink` puts an edge node in front of an `MqttPublisher` for `gridmon simulate
--sparkplug`; `sparkplug_load` does the same for the ingest benchmark's pre-built payloads.
Device `<id>` of edge node `<node>` is gridmon device `<node>:<id>`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import orjson

from gridmon.domain import sparkplug as spb
from gridmon.domain.readings import parse_timestamp
from gridmon.domain.sparkplug_schema import BOOLEAN, DOUBLE, INT64
from gridmon.simulator.publisher import MqttPublisher

log = logging.getLogger(__name__)

DEFAULT_GROUP = "gridmon"
DEFAULT_NODE = "gridmon-sim"
ALIASES = {"voltage": 1, "current": 2, "temperature": 3}

Message = tuple[str, bytes]


class SparkplugEdge:
    """One edge node's messages (pure: no network)."""

    def __init__(self, group: str = DEFAULT_GROUP, node: str = DEFAULT_NODE, bd_seq: int = 0) -> None:
        self.group, self.node, self.bd_seq = group, node, bd_seq
        self._seq = 0
        self._last: dict[str, tuple[int, dict[str, float]]] = {}

    def _topic(self, kind: str, device: str | None = None) -> str:
        base = f"{spb.NAMESPACE}/{self.group}/{kind}/{self.node}"
        return base if device is None else f"{base}/{device}"

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def node_birth(self, ts_ms: int | None = None) -> Message:
        self._seq = 0
        metrics = [(spb.BD_SEQ, None, INT64, self.bd_seq), (spb.REBIRTH_METRIC, None, BOOLEAN, False)]
        return self._topic("NBIRTH"), spb.encode(metrics, timestamp_ms=ts_ms, seq=self._next_seq())

    def node_death(self) -> Message:
        return self._topic("NDEATH"), spb.encode([(spb.BD_SEQ, None, INT64, self.bd_seq)], timestamp_ms=0)

    def device_birth(self, device: str, ts_ms: int, values: dict[str, float]) -> Message:
        metrics = [(name, ALIASES[name], DOUBLE, values[name]) for name in ALIASES]
        self._last[device] = (ts_ms, dict(values))
        return self._topic("DBIRTH", device), spb.encode(metrics, timestamp_ms=ts_ms, seq=self._next_seq())

    def device_death(self, device: str, ts_ms: int) -> Message:
        self._last.pop(device, None)
        return self._topic("DDEATH", device), spb.encode([], timestamp_ms=ts_ms, seq=self._next_seq())

    def device_data(self, device: str, ts_ms: int, values: dict[str, float]) -> Message:
        metrics: list[tuple[str | None, int | None, int, float | bool]] = [
            (None, ALIASES[name], DOUBLE, value) for name, value in values.items()
        ]
        self._last[device] = (ts_ms, {**self._last.get(device, (0, {}))[1], **values})
        return self._topic("DDATA", device), spb.encode(metrics, timestamp_ms=ts_ms, seq=self._next_seq())

    def reading(self, device: str, ts_ms: int, values: dict[str, float]) -> Message:
        """A device's reading: its DBIRTH the first time, DDATA by alias afterwards."""
        if device in self._last:
            return self.device_data(device, ts_ms, values)
        return self.device_birth(device, ts_ms, values)

    def rebirth(self) -> list[Message]:
        """NBIRTH and every known device's DBIRTH (with its last values), as after an NCMD Rebirth."""
        out = [self.node_birth()]
        for device, (ts_ms, values) in list(self._last.items()):
            out.append(self.device_birth(device, ts_ms, values))
        return out


def _from_json(payload: bytes) -> tuple[str, int, dict[str, float]]:
    doc = orjson.loads(payload)
    ts_ms = round(parse_timestamp(doc["timestamp"]) * 1000)
    return str(doc["device_id"]), ts_ms, {name: float(doc[name]) for name in ALIASES}


def sparkplug_load(
    payloads: Iterable[Message], *, group: str = DEFAULT_GROUP, node: str = DEFAULT_NODE
) -> Iterator[Message]:
    """The same readings as Sparkplug B messages of one edge node: NBIRTH, then a DBIRTH per
    device's first reading and DDATA for the rest (one message per reading after the NBIRTH)."""
    edge = SparkplugEdge(group, node)
    yield edge.node_birth()
    for _, payload in payloads:
        yield edge.reading(*_from_json(payload))


class SparkplugSink:
    """The simulator's sink as a Sparkplug B edge node on an `MqttPublisher` (answers rebirth commands)."""

    def __init__(self, publisher: MqttPublisher, edge: SparkplugEdge) -> None:
        self.publisher = publisher
        self.edge = edge
        self._reconnects = publisher.reconnects
        self._rebirth_requested = False
        publisher.subscribe(spb.command_topic(edge.group, edge.node), self._on_command)
        self._send([edge.node_birth()])

    def _on_command(self, payload: bytes) -> None:
        try:
            message = spb.decode(payload)
        except Exception:  # a broken command is not ours to crash on
            log.warning("undecodable NCMD ignored")
            return
        if any(m.name == spb.REBIRTH_METRIC and m.boolean_value for m in message.metrics):
            self._rebirth_requested = True

    def _send(self, messages: list[Message]) -> bool:
        return all([self.publisher.publish(topic, payload) for topic, payload in messages])

    def _maybe_rebirth(self) -> None:
        if self._rebirth_requested or self.publisher.reconnects != self._reconnects:
            self._rebirth_requested = False
            self._reconnects = self.publisher.reconnects
            messages = self.edge.rebirth()
            log.info("sparkplug rebirth node=%s devices=%d", self.edge.node, len(messages) - 1)
            self._send(messages)

    def publish(self, topic: str, payload: bytes) -> bool:
        self._maybe_rebirth()
        return self._send([self.edge.reading(*_from_json(payload))])

    def service(self, timeout: float = 0.0) -> None:
        self.publisher.service(timeout)
        self._maybe_rebirth()

    def flush(self, timeout: float | None = None) -> bool:
        return self.publisher.flush(timeout)

    def close(self) -> None:
        self.publisher.close()

    def __getattr__(self, name: str) -> object:  # counters the runner reports (sent, acked, dropped, …)
        return getattr(self.publisher, name)
