"""The Sparkplug B payload schema (Eclipse Tahu's `Payload`/`Metric` messages), built at import time.

The field numbers and types are those of the Sparkplug B specification's protobuf schema; the
message classes come from Google's `protobuf` package (its C `upb` backend parses them), built
from a descriptor assembled here, so there is no generated code and no `protoc` step. Only the
fields gridmon reads or writes are declared: Tahu's other fields (metadata, properties, data
sets, templates, extensions) are skipped by the parser as unknown fields, which protobuf allows.

`Payload`: timestamp (1, ms since the epoch), metrics (2), seq (3), uuid (4), body (5).
`Payload.Metric`: name (1), alias (2), timestamp (3), datatype (4), is_historical (5),
is_transient (6), is_null (7), and the value oneof: int_value (10, uint32), long_value (11,
uint64), float_value (12), double_value (13), boolean_value (14), string_value (15), bytes_value (16).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "gridmon.sparkplug_b"

# Sparkplug B data types (the specification's DataType enum) gridmon reads as numbers.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12
SIGNED_32 = frozenset((INT8, INT16, INT32))


def _field(message: Any, name: str, number: int, kind: int, *, repeated: bool = False, **extra: Any) -> Any:
    label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    return message.field.add(name=name, number=number, type=kind, label=label, **extra)


def _build() -> tuple[Any, Any]:
    proto = descriptor_pb2.FileDescriptorProto(name="gridmon_sparkplug_b.proto", package=_PACKAGE, syntax="proto2")
    payload = proto.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    _field(metric, "name", 1, _F.TYPE_STRING)
    _field(metric, "alias", 2, _F.TYPE_UINT64)
    _field(metric, "timestamp", 3, _F.TYPE_UINT64)
    _field(metric, "datatype", 4, _F.TYPE_UINT32)
    _field(metric, "is_historical", 5, _F.TYPE_BOOL)
    _field(metric, "is_transient", 6, _F.TYPE_BOOL)
    _field(metric, "is_null", 7, _F.TYPE_BOOL)
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("int_value", 10, _F.TYPE_UINT32),
        ("long_value", 11, _F.TYPE_UINT64),
        ("float_value", 12, _F.TYPE_FLOAT),
        ("double_value", 13, _F.TYPE_DOUBLE),
        ("boolean_value", 14, _F.TYPE_BOOL),
        ("string_value", 15, _F.TYPE_STRING),
        ("bytes_value", 16, _F.TYPE_BYTES),
    ):
        _field(metric, name, number, kind, oneof_index=0)
    _field(payload, "timestamp", 1, _F.TYPE_UINT64)
    _field(payload, "metrics", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.Payload.Metric")
    _field(payload, "seq", 3, _F.TYPE_UINT64)
    _field(payload, "uuid", 4, _F.TYPE_STRING)
    _field(payload, "body", 5, _F.TYPE_BYTES)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    payload_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Payload"))
    metric_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Payload.Metric"))
    return payload_cls, metric_cls


Payload, Metric = _build()
