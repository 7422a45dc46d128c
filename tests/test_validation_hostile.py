"""Validation against hostile payloads (issue 13): one accepted time range for every timestamp
form, the topic names the device, ids that are path segments, non-UTF-8 JSON, bounded work."""

from __future__ import annotations

import orjson
import pytest

from gridmon.domain import readings as r
from gridmon.domain.readings import Reading, Rejection, parse_reading

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z
GOOD = {"timestamp": NOW, "voltage": 230.5, "current": 4.2, "temperature": 35.1}


def parse(doc: object, topic: str = "grid/sensors/s1", **kwargs: object) -> Reading | Rejection:
    payload = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return parse_reading(topic, payload, NOW, **kwargs)  # type: ignore[arg-type]


def rejected(result: Reading | Rejection, reason: str) -> bool:
    return isinstance(result, Rejection) and result.reason == reason and bool(result.detail)


@pytest.mark.parametrize(
    "stamp",
    [
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC: stored as BC, broke every scan
        "0001-01-01T00:00:00-12:00",
        "1999-12-31T23:59:59Z",
        "1999-12-31T23:59:59.999999+00:00",
        "2100-01-01T00:00:00Z",
        "9999-12-31T23:59:59-12:00",
        253402300799,  # year 9999 in seconds: was read as milliseconds (1978)
        253402300799.0,
        946684799,  # one second before 2000
        50_000_000_000,  # neither seconds (year 3554) nor milliseconds (1971) of the range
        4_102_444_800_000,  # 2100 in milliseconds
        0,
    ],
)
def test_timestamps_outside_the_one_range_are_bad_timestamp(stamp: object) -> None:
    result = parse({**GOOD, "timestamp": stamp}, max_future_s=1e12)
    assert rejected(result, r.BAD_TIMESTAMP), result
    assert "2000-01-01" in result.detail  # type: ignore[union-attr]  # names the accepted range


@pytest.mark.parametrize(
    ("stamp", "epoch"),
    [
        ("2000-01-01T00:00:00Z", 946_684_800.0),
        ("2000-01-01T09:00:00+09:00", 946_684_800.0),
        (946_684_800, 946_684_800.0),
        (946_684_800_000, 946_684_800.0),  # the same instant in milliseconds
        ("2026-09-21T00:13:20-14:00", NOW),
        (NOW * 1000, NOW),
    ],
)
def test_range_edges_are_accepted_in_every_form(stamp: object, epoch: float) -> None:
    result = parse({**GOOD, "timestamp": stamp})
    assert isinstance(result, Reading) and result.ts == epoch


def test_payload_device_id_must_match_the_topic() -> None:
    stolen = parse({**GOOD, "device_id": "victim"}, topic="grid/sensors/attacker")
    assert rejected(stolen, r.DEVICE_MISMATCH)
    assert "victim" in stolen.detail and "attacker" in stolen.detail  # type: ignore[union-attr]
    own = parse({**GOOD, "device_id": "s1"})
    assert isinstance(own, Reading) and own.device_id == "s1"


@pytest.mark.parametrize(
    "topic",
    ["grid/sensors/a/b/c", "grid/sensors", "grid/sensors/", "other/sensors/s1", "grid/sensors/a/"],
)
def test_topics_that_name_no_device_are_rejected(topic: str) -> None:
    assert rejected(parse({**GOOD}, topic=topic), r.BAD_DEVICE_ID)
    assert rejected(parse({**GOOD, "device_id": "s1"}, topic=topic), r.BAD_DEVICE_ID)


def test_topic_filter_with_a_plus_level() -> None:
    result = parse({**GOOD}, topic="site-4/sensors/s9", topic_filter="+/sensors/+")
    assert isinstance(result, Reading) and result.device_id == "s9"
    assert rejected(parse({**GOOD}, topic="site-4/meters/s9", topic_filter="+/sensors/+"), r.BAD_DEVICE_ID)


@pytest.mark.parametrize("device", [".", "..", "..."])
def test_dot_only_device_ids_are_rejected(device: str) -> None:
    assert rejected(parse({**GOOD}, topic=f"grid/sensors/{device}"), r.BAD_DEVICE_ID)
    assert rejected(parse({**GOOD, "device_id": device}, topic=f"grid/sensors/{device}"), r.BAD_DEVICE_ID)
    assert isinstance(parse({**GOOD}, topic="grid/sensors/.a."), Reading)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xef\xbb\xbf" + orjson.dumps(GOOD), "byte-order mark"),
        (orjson.dumps(GOOD).decode().encode("utf-16"), "NUL"),  # with its BOM
        (orjson.dumps(GOOD).decode().encode("utf-16-le"), "NUL"),
        (orjson.dumps(GOOD).decode().encode("utf-32"), "NUL"),
        ('{"timestamp": 1790000000, "voltage": NaN}'.encode("utf-16-be"), "NUL"),
    ],
)
def test_json_that_is_not_plain_utf8_is_rejected(payload: bytes, words: str) -> None:
    result = parse(payload)
    assert rejected(result, r.NOT_JSON)
    assert words in result.detail  # type: ignore[union-attr]


def _flat_hostile(size: int = 64 * 1024 - 64) -> bytes:
    doc: dict[str, object] = dict(GOOD)
    i = 0
    while len(orjson.dumps(doc)) < size:
        doc[f"k{i:05d}"] = i
        i += 1
    return orjson.dumps(doc)


def test_too_many_members_are_refused_before_looking_at_them() -> None:
    payload = _flat_hostile()
    assert len(payload) <= 64 * 1024
    result = parse(payload)
    assert rejected(result, r.TOO_COMPLEX)
    assert f"at most {r.MAX_MEMBERS}" in result.detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "payload",
    [
        orjson.dumps({**GOOD, "meta": []})[:-3] + b"[" * 40 + b"]" * 40 + b"]}",  # deep metadata
        orjson.dumps({**GOOD, "tags": [[1]] * 30}),  # many small arrays
        b'{"timestamp":1790000000,"voltage":NaN,"m":' + b"[" * 500 + b"]" * 500 + b"}",  # lenient path
    ],
)
def test_nesting_is_refused_before_parsing(payload: bytes) -> None:
    assert rejected(parse(payload), r.TOO_COMPLEX)


def test_extra_with_too_many_members_is_refused_before_looking_at_them() -> None:
    doc = {**GOOD, "extra": {f"m{i}": float(i) for i in range(r.MAX_EXTRA_METRICS + 1)}}
    assert rejected(parse(doc), r.NON_NUMERIC)


def test_normal_payloads_stay_well_inside_the_bounds() -> None:
    doc = {**GOOD, "device_id": "s1", "firmware": "1.2.3", "tags": ["a", "b"], "extra": {"pf": 0.9, "hz": 50.0}}
    result = parse(doc)
    assert isinstance(result, Reading) and result.extra == {"pf": 0.9, "hz": 50.0}
