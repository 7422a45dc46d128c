"""Sparkplug B decoding and the bridge's host-side state machine, in process.

The handler feeds a real `Batcher` whose hand-off records the batches, the way the bridge's
flusher hands them to Celery; the end-to-end path through Mosquitto and the worker is
`tests/test_sparkplug_e2e.py`.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest

from gridmon.bridge.batcher import Ack, Batch, Batcher
from gridmon.bridge.sparkplug import SparkplugHandler
from gridmon.config import get_settings
from gridmon.domain import sparkplug as spb
from gridmon.domain.sparkplug_schema import BOOLEAN, DOUBLE, FLOAT, INT16, INT64, STRING, Payload
from gridmon.domain.wire import decode_dead
from gridmon.simulator.sparkplug import SparkplugEdge, sparkplug_load

G, N = "plant", "edge1"
T_MS = 1_790_000_000_000


def test_schema_field_numbers_match_the_specification_bytes():
    # Payload{timestamp=1000, metrics=[{name "voltage", alias 1, datatype 10, double 230.5}], seq 3},
    # written out by hand from the protobuf wire format and the Sparkplug B field numbers.
    metric = b"\x0a\x07voltage" + b"\x10\x01" + b"\x20\x0a" + b"\x69" + struct.pack("<d", 230.5)
    expected = b"\x08\xe8\x07" + b"\x12" + bytes([len(metric)]) + metric + b"\x18\x03"
    assert spb.encode([("voltage", 1, DOUBLE, 230.5)], timestamp_ms=1000, seq=3) == expected
    decoded = spb.decode(expected)
    assert (decoded.timestamp, decoded.seq, decoded.metrics[0].alias, decoded.metrics[0].double_value) == (
        1000, 3, 1, 230.5
    )


def test_values_by_datatype_and_names_onto_fields():
    message = Payload()
    message.metrics.add(datatype=INT16, int_value=(-40) & 0xFFFFFFFF)
    message.metrics.add(datatype=INT64, long_value=(-7) & 0xFFFFFFFFFFFFFFFF)
    message.metrics.add(datatype=FLOAT, float_value=1.5)
    message.metrics.add(datatype=STRING, string_value="v1.2")
    message.metrics.add(datatype=DOUBLE, is_null=True)
    values = [spb.number(m, m.datatype) for m in message.metrics]
    assert values == [-40.0, -7.0, 1.5, None, None]

    assert spb.field_for("Inputs/Voltage", {}) == "voltage"
    assert spb.field_for("Transformer 3/Oil Temperature", {}) == "transformer_3_oil_temperature"
    assert spb.field_for("Transformer 3/Oil Temperature", {"Transformer 3/Oil Temperature": "temperature"}) == (
        "temperature"
    )
    assert spb.field_for("bdSeq", {}) is None and spb.field_for("Node Control/Rebirth", {}) is None
    assert spb.parse_topic(f"spBv1.0/{G}/DDATA/{N}/m1") == spb.Topic(G, "DDATA", N, "m1")
    assert spb.parse_topic(f"spBv1.0/{G}/NDATA/{N}") == spb.Topic(G, "NDATA", N, None)
    assert spb.parse_topic(f"spBv1.0/{G}/DDATA/{N}") is None  # device message without a device
    assert spb.parse_topic(f"spBv1.0/{G}/NCMD/{N}") is None


class Harness:
    """A handler on a real Batcher; hand-offs, acknowledgements and commands are recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
        config = get_settings()
        for name, value in settings.items():
            monkeypatch.setattr(config, name, value)
        self.batches: list[Batch] = []
        self.acked: list[Ack] = []
        self.commands: list[tuple[str, bytes]] = []
        self.batcher = Batcher(self.batches.append, self.acked.extend, max_items=1000, max_age_s=0.01, idle_s=0.005)
        self.batcher.start()
        self.handler = SparkplugHandler(config, self.batcher, lambda t, p: self.commands.append((t, p)), self.acked.extend)
        self._mid = 0

    def send(self, kind: str, payload: bytes, device: str | None = "m1") -> Ack:
        self._mid += 1
        topic = f"spBv1.0/{G}/{kind}/{N}" + (f"/{device}" if device else "")
        ack = (1, self._mid, 1)
        self.handler.handle(topic, payload, ack, time.time())
        return ack

    def settle(self) -> tuple[list[Any], list[Any], list[Any]]:
        self.batcher.close()
        readings = [r for b in self.batches for r in b.readings]
        dead = [decode_dead(d) for b in self.batches for d in b.dead]
        status = [s for b in self.batches for s in b.status]
        return readings, dead, status


def birth(seq: int, voltage: float = 230.0, ts_ms: int = T_MS) -> bytes:
    return spb.encode(
        [("Inputs/Voltage", 1, DOUBLE, voltage), ("Inputs/Current", 2, DOUBLE, 4.0),
         ("Inputs/Temperature", 3, FLOAT, 35.5), ("Inputs/Frequency", 4, DOUBLE, 50.0),
         ("Firmware", 5, STRING, "1.0")],
        timestamp_ms=ts_ms, seq=seq,
    )


def test_births_aliases_report_by_exception_and_deaths(monkeypatch):
    h = Harness(monkeypatch)
    node_birth = spb.encode([(spb.BD_SEQ, None, INT64, 7), (spb.REBIRTH_METRIC, None, BOOLEAN, False)], seq=0)
    acks = [h.send("NBIRTH", node_birth, None), h.send("DBIRTH", birth(1))]
    acks.append(h.send("DDATA", spb.encode([(None, 1, DOUBLE, 231.25)], timestamp_ms=T_MS + 1000, seq=2)))
    acks.append(h.send("DDATA", spb.encode([(None, 3, FLOAT, 36.5), (None, 4, DOUBLE, 49.9)],
                                           timestamp_ms=T_MS + 2000, seq=3)))
    acks.append(h.send("DDEATH", spb.encode([], timestamp_ms=T_MS + 3000, seq=4)))
    stale = spb.encode([(spb.BD_SEQ, None, INT64, 6)], timestamp_ms=0)
    acks.append(h.send("NDEATH", stale, None))  # an earlier session's will: ignored
    acks.append(h.send("NDEATH", spb.encode([(spb.BD_SEQ, None, INT64, 7)], timestamp_ms=0), None))
    readings, dead, status = h.settle()
    dev = f"{N}:m1"
    assert readings == [
        # no trailing seq: Sparkplug's counts the edge node's messages, not the device's readings
        (dev, T_MS / 1000, 230.0, 4.0, 35.5, {"inputs_frequency": 50.0}),
        (dev, T_MS / 1000 + 1, 231.25, 4.0, 35.5, {"inputs_frequency": 50.0}),
        (dev, T_MS / 1000 + 2, 231.25, 4.0, 36.5, {"inputs_frequency": 49.9}),
    ]
    assert dead == []
    assert [s[1:] for s in status] == [["birth", "node", N], ["birth", "device", dev], ["death", "device", dev],
                                       ["death", "node", N]]
    assert sorted(h.acked) == sorted(acks)  # every message acknowledged, after its hand-off
    assert h.commands == []


def test_data_before_birth_asks_for_a_rebirth_and_is_not_lost(monkeypatch):
    h = Harness(monkeypatch)
    early = h.send("DDATA", spb.encode([(None, 1, DOUBLE, 229.5)], timestamp_ms=T_MS + 500, seq=9))
    assert [t for t, _ in h.commands] == [f"spBv1.0/{G}/NCMD/{N}"]
    command = spb.decode(h.commands[0][1])
    assert [(m.name, m.boolean_value) for m in command.metrics] == [(spb.REBIRTH_METRIC, True)]
    assert early not in h.acked  # held, unacknowledged, while the birth is awaited
    h.send("DDATA", spb.encode([(None, 1, DOUBLE, 229.0)], timestamp_ms=T_MS + 600, seq=10))
    assert len(h.commands) == 1  # one request per node, not one per message
    h.send("DBIRTH", birth(0, voltage=230.0, ts_ms=T_MS + 700))
    readings, dead, _ = h.settle()
    assert [(r[1], r[2]) for r in readings] == [
        (T_MS / 1000 + 0.7, 230.0), (T_MS / 1000 + 0.5, 229.5), (T_MS / 1000 + 0.6, 229.0)
    ]
    assert dead == [] and early in h.acked


def test_held_data_without_a_birth_is_dead_lettered_malformed_too(monkeypatch):
    h = Harness(monkeypatch, sparkplug_birth_timeout_s=0.01)
    h.send("DDATA", spb.encode([(None, 1, DOUBLE, 229.5)], timestamp_ms=T_MS, seq=1))
    h.send("DDATA", b"\x12\xff\x01garbage")
    h.handler.handle("spBv1.0/plant/DDATA", b"", (1, 99, 1), time.time())  # not a data topic
    time.sleep(0.02)
    h.handler.expire(time.time())
    readings, dead, _ = h.settle()
    assert readings == []
    assert sorted(d.reason for d in dead) == ["sparkplug_malformed", "sparkplug_malformed", "sparkplug_no_birth"]
    assert {d.payload for d in dead if d.reason == "sparkplug_malformed"} == {b"\x12\xff\x01garbage", b""}


def test_out_of_range_values_are_rejected_like_json(monkeypatch):
    h = Harness(monkeypatch)
    h.send("DBIRTH", birth(0))
    h.send("DDATA", spb.encode([(None, 1, DOUBLE, 5000.0)], timestamp_ms=T_MS + 1000, seq=1))
    h.send("DDATA", spb.encode([(None, 2, DOUBLE, 4.5)], timestamp_ms=T_MS + 2000, seq=2))
    readings, dead, _ = h.settle()
    assert [d.reason for d in dead] == ["out_of_physical_range"]
    assert [(r[2], r[3]) for r in readings] == [(230.0, 4.0), (230.0, 4.5)]  # the bad value is not kept


def test_simulated_edge_node_round_trips_through_the_decoder():
    from gridmon.simulator.load import make_load_payloads

    messages = list(sparkplug_load(make_load_payloads(6, devices=2, seed=1, start_ts=1_790_000_000.0)))
    kinds = [t.split("/")[2] for t, _ in messages]
    assert kinds == ["NBIRTH", "DBIRTH", "DBIRTH", "DDATA", "DDATA", "DDATA", "DDATA"]
    assert [spb.decode(p).seq for _, p in messages] == list(range(7))
    edge = SparkplugEdge(G, N)
    edge.reading("m1", T_MS, {"voltage": 1.0, "current": 2.0, "temperature": 3.0})
    assert [t.split("/")[2] for t, _ in edge.rebirth()] == ["NBIRTH", "DBIRTH"]
