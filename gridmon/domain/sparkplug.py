"""Sparkplug B: topics, metric values and the mapping of metric names onto a reading (pure).

Topics: `spBv1.0/<group>/<type>/<edge node>[/<device>]`, type one of NBIRTH, NDEATH, NDATA,
DBIRTH, DDEATH, DDATA (and the commands NCMD/DCMD, which gridmon only sends).

A Sparkplug device becomes the gridmon device `<edge node>:<device>`; an edge node's own metrics
(NBIRTH/NDATA) belong to the gridmon device `<edge node>`. Metric names map onto a reading's
fields by `field_for`: an explicit map (`GRIDMON_SPARKPLUG_METRIC_MAP`, Sparkplug name → field)
first, then the name normalised (lower case, runs of other characters → `_`) and its last path
segment (`Inputs/Voltage` → `voltage`) against `voltage`, `current`, `temperature`; any other
numeric metric is an extra metric under its normalised full name (`Inputs/Frequency` →
`inputs_frequency`). Units are the reading's: V, A, °C. Booleans, strings, bytes, data sets and
templates are not readings and are skipped, as are the control metrics (`bdSeq`,
`Node Control/…`, `Device Control/…`, `Properties/…`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridmon.domain.readings import CORE_METRICS
from gridmon.domain.sparkplug_schema import (
    BOOLEAN,
    DOUBLE,
    FLOAT,
    INT64,
    SIGNED_32,
    STRING,
    Payload,
)

NAMESPACE = "spBv1.0"
DATA_TYPES = ("NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA")
NODE_TYPES = frozenset(("NBIRTH", "NDEATH", "NDATA"))
REBIRTH_METRIC = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
_CONTROL_PREFIXES = ("node control/", "device control/", "properties/")
_NON_WORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Topic:
    group: str
    type: str
    node: str
    device: str | None

    @property
    def device_id(self) -> str:
        """The gridmon device id (`<node>:<device>`, or `<node>` for the node's own metrics)."""
        return self.node if self.device is None else f"{self.node}:{self.device}"


def parse_topic(topic: str) -> Topic | None:
    """A Sparkplug B data topic, or None for anything else."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in DATA_TYPES:
        return None
    is_node = parts[2] in NODE_TYPES
    if is_node != (len(parts) == 4) or not all(parts[1:]):
        return None
    return Topic(parts[1], parts[2], parts[3], None if is_node else parts[4])


def subscriptions(group: str) -> list[str]:
    """The topic filters of one group (`+` = every group): births, deaths and data only."""
    return [f"{NAMESPACE}/{group}/{kind}/#" for kind in DATA_TYPES]


def command_topic(group: str, node: str) -> str:
    return f"{NAMESPACE}/{group}/NCMD/{node}"


def decode(payload: bytes | bytearray) -> Any:
    """Parse a Sparkplug B payload; raises `google.protobuf.message.DecodeError` on malformed bytes."""
    message = Payload()
    message.ParseFromString(bytes(payload))
    return message


def normalise(name: str) -> str:
    return _NON_WORD.sub("_", name.lower()).strip("_")


def field_for(name: str, explicit: dict[str, str]) -> str | None:
    """The reading field a metric name maps onto (`voltage`, …, or an extra name); None = skip."""
    if name in explicit:
        return explicit[name]
    lowered = name.lower()
    if name == BD_SEQ or lowered.startswith(_CONTROL_PREFIXES):
        return None
    full = normalise(name)
    last = normalise(name.rsplit("/", 1)[-1])
    if last in CORE_METRICS:
        return last
    if full in CORE_METRICS:
        return full
    return full or None


def number(metric: Any, datatype: int | None) -> float | None:
    """A metric's numeric value (signed integers decoded by their datatype); None if not a number."""
    kind = metric.WhichOneof("value")
    if kind is None:  # no value set: null (is_null) or not sent
        return None
    if kind == "double_value":
        return float(metric.double_value)
    if kind == "float_value":
        return float(metric.float_value)
    if kind == "int_value":
        raw = int(metric.int_value)
        return float(raw - (1 << 32) if datatype in SIGNED_32 and raw >= 1 << 31 else raw)
    if kind == "long_value":
        raw = int(metric.long_value)
        return float(raw - (1 << 64) if datatype == INT64 and raw >= 1 << 63 else raw)
    return None


def metric_int(message: Any, name: str) -> int | None:
    """The integer value of the named metric of a payload (e.g. `bdSeq`), or None."""
    for metric in message.metrics:
        if metric.name == name:
            kind = metric.WhichOneof("value")
            if kind in ("int_value", "long_value"):
                return int(getattr(metric, kind))
    return None


def encode(
    metrics: Sequence[tuple[str | None, int | None, int, float | bool | str]],
    *,
    timestamp_ms: int | None = None,
    seq: int | None = None,
) -> bytes:
    """A payload of (name or None, alias or None, datatype, value) metrics (simulator, tests)."""
    message = Payload(timestamp=int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    if seq is not None:
        message.seq = seq
    for name, alias, datatype, value in metrics:
        metric = message.metrics.add(datatype=datatype)
        if name is not None:
            metric.name = name
        if alias is not None:
            metric.alias = alias
        if datatype == BOOLEAN:
            metric.boolean_value = bool(value)
        elif datatype == DOUBLE:
            metric.double_value = float(value)
        elif datatype == FLOAT:
            metric.float_value = float(value)
        elif datatype == STRING:
            metric.string_value = str(value)
        elif datatype == INT64:
            metric.long_value = int(value) & ((1 << 64) - 1)
        else:
            metric.int_value = int(value) & ((1 << 32) - 1)
    return bytes(message.SerializeToString())


def rebirth_command(timestamp_ms: int | None = None) -> bytes:
    """The NCMD payload asking an edge node to publish its births again."""
    return encode([(REBIRTH_METRIC, None, BOOLEAN, True)], timestamp_ms=timestamp_ms)
