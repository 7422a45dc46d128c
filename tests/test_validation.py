"""Validation: every bad-input class gets its reason; out-of-range readings are valid readings."""

from __future__ import annotations

import math

import orjson
import pytest

from gridmon.domain import readings as r
from gridmon.domain.readings import Reading, Rejection, parse_reading

NOW = 1_790_000_000.0
GOOD = {
    "device_id": "sensor_1",
    "timestamp": "2026-09-21T14:13:20+00:00",
    "voltage": 230.5,
    "current": 4.2,
    "temperature": 35.1,
}


def parse(obj: object, topic: str = "grid/sensors/sensor_1") -> Reading | Rejection:
    payload = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return parse_reading(topic, payload, NOW)


def with_(**changes: object) -> dict[str, object]:
    doc = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


def test_good_reading_values_exact() -> None:
    result = parse(GOOD)
    assert result == Reading("sensor_1", 1790000000.0, 230.5, 4.2, 35.1, None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", r.NOT_JSON),
        (b"[1, 2, 3]", r.NOT_OBJECT),
        (b'"a string"', r.NOT_OBJECT),
        (with_(voltage=...), r.MISSING_FIELD),
        (with_(timestamp=...), r.MISSING_FIELD),
        (with_(current="4.2"), r.NON_NUMERIC),
        (with_(temperature=None), r.NON_NUMERIC),
        (with_(voltage=True), r.NON_NUMERIC),
        (b'{"device_id":"sensor_1","timestamp":1790000000,"voltage":NaN,"current":1,"temperature":1}', r.NON_FINITE),
        (b'{"device_id":"sensor_1","timestamp":1790000000,"voltage":1,"current":Infinity,"temperature":1}', r.NON_FINITE),
        (with_(device_id="bad id with spaces"), r.BAD_DEVICE_ID),
        (with_(device_id="x" * 65), r.BAD_DEVICE_ID),
        (with_(device_id=12), r.BAD_DEVICE_ID),
        (with_(voltage=-1.0), r.OUT_OF_PHYSICAL_RANGE),
        (with_(voltage=1000.5), r.OUT_OF_PHYSICAL_RANGE),
        (with_(current=-0.1), r.OUT_OF_PHYSICAL_RANGE),
        (with_(current=1001.0), r.OUT_OF_PHYSICAL_RANGE),
        (with_(temperature=-61.0), r.OUT_OF_PHYSICAL_RANGE),
        (with_(temperature=251.0), r.OUT_OF_PHYSICAL_RANGE),
        (with_(timestamp="yesterday"), r.BAD_TIMESTAMP),
        (with_(timestamp=[1]), r.BAD_TIMESTAMP),
        (with_(timestamp=-5), r.BAD_TIMESTAMP),
        (with_(timestamp=NOW + 301), r.FUTURE_TIMESTAMP),
        (with_(extra={"pf": "high"}), r.NON_NUMERIC),
        (b"{" + b'"a":1,' * 20000 + b'"b":2}', r.TOO_LARGE),
    ],
)
def test_rejections(payload: object, reason: str) -> None:
    result = parse(payload)
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.detail  # a human-readable explanation accompanies every reason


@pytest.mark.parametrize(
    ("changes", "metric", "value"),
    [
        ({"voltage": 260.0}, "voltage", 260.0),
        ({"voltage": 150.0}, "voltage", 150.0),
        ({"current": 25.0}, "current", 25.0),
        ({"temperature": 95.0}, "temperature", 95.0),
        ({"temperature": -10.0}, "temperature", -10.0),
    ],
)
def test_out_of_safe_range_is_a_valid_reading(changes: dict[str, float], metric: str, value: float) -> None:
    result = parse(with_(**changes))
    assert isinstance(result, Reading)
    assert getattr(result, metric) == value


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-09-21T14:13:20", 1790000000.0),  # naive = UTC
        ("2026-09-21T14:13:20Z", 1790000000.0),
        ("2026-09-21T16:13:20+02:00", 1790000000.0),
        ("2026-09-21T14:13:20.123456+00:00", 1790000000.123456),
        (1790000000, 1790000000.0),
        (1790000000.5, 1790000000.5),
        (1790000000123, 1790000000.123),  # epoch milliseconds
    ],
)
def test_timestamp_forms(stamp: object, expected: float) -> None:
    result = parse(with_(timestamp=stamp))
    assert isinstance(result, Reading)
    assert math.isclose(result.ts, expected, abs_tol=1e-6)


def test_device_id_from_topic_when_absent() -> None:
    result = parse(with_(device_id=...), topic="grid/sensors/feeder-7.a")
    assert isinstance(result, Reading)
    assert result.device_id == "feeder-7.a"


def test_extra_numeric_metrics_kept_metadata_ignored() -> None:
    result = parse(with_(power_factor=0.93, firmware="1.2.3", extra={"frequency": 50.01}))
    assert isinstance(result, Reading)
    assert result.extra == {"power_factor": 0.93, "frequency": 50.01}


def test_parse_never_raises_on_garbage() -> None:
    for payload in (b"", b"\xff\xfe\x00", b"{", b"null", b"1e999", b'{"timestamp": {}}'):
        assert isinstance(parse_reading("grid/sensors/x", payload, NOW), Rejection)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"timestamp":1790000000,"voltage":1' + b"0" * 400 + b',"current":1,"temperature":1}', r.NON_FINITE),
        (b'{"timestamp":1' + b"0" * 400 + b',"voltage":1,"current":1,"temperature":1}', r.BAD_TIMESTAMP),
        (b'{"timestamp":1790000000,"voltage":1,"current":1,"temperature":1,"f":1' + b"0" * 400 + b"}", r.NON_FINITE),
    ],
)
def test_integers_too_large_for_a_double_are_rejected_not_raised(payload: bytes, reason: str) -> None:
    result = parse_reading("grid/sensors/d", payload, NOW)
    assert isinstance(result, Rejection) and result.reason == reason


def test_extra_metrics_kept_when_device_id_comes_from_the_topic() -> None:
    result = parse(with_(device_id=..., frequency=50.02), topic="grid/sensors/feeder-2")
    assert isinstance(result, Reading)
    assert (result.device_id, result.extra) == ("feeder-2", {"frequency": 50.02})
    bad = parse(with_(device_id=..., extra={"x": "high"}))
    assert isinstance(bad, Rejection) and bad.reason == r.NON_NUMERIC
