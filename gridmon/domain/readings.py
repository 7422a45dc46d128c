"""A sensor reading and the validation that turns an MQTT payload into one.

Two kinds of bad never get confused here:
- malformed or physically impossible payloads are *rejected* with a reason (they end up in
  `dead_letters`);
- readings outside the safe operating range are *valid* readings: they are stored, and they are
  exactly what the detectors exist to catch.

This is on the bridge's hot path (tens of thousands of calls a second), so it avoids per-call
allocation where it can and keeps the checks flat.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

CORE_METRICS = ("voltage", "current", "temperature")

# Physically possible ranges: outside them a reading is a broken sensor or a broken payload.
PHYSICAL_LIMITS: dict[str, tuple[float, float]] = {
    "voltage": (0.0, 1000.0),
    "current": (0.0, 1000.0),
    "temperature": (-60.0, 250.0),
}

MAX_EXTRA_METRICS = 32
# Bounds on a payload's shape, checked before the per-member work so a hostile payload costs
# about what a normal one does: objects and arrays (counted on the raw bytes, before parsing) and
# top-level members (counted after parsing, before any member is looked at).
MAX_CONTAINERS = 16
MAX_MEMBERS = 64
# A device id: 1–64 of these characters, not only dots ("." and ".." are path segments). Written
# without look-ahead so the API's parameter validation (Rust regex) uses the same pattern.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.:-]*[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$"
DEVICE_ID_MAX = 64
DEVICE_ID_RULE = "1-64 of A-Z a-z 0-9 _ . : - and not only dots"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_RESERVED = frozenset(("device_id", "timestamp", "ts", "seq", *CORE_METRICS, "extra"))
SEQ_MODULUS = 2**32  # `seq` counts 0 … 2^32 - 1, then wraps around to 0

# The one accepted time range, for every timestamp form (ISO-8601 with any offset, epoch seconds,
# epoch milliseconds) and for the `sensor_readings.ts` CHECK (migration 0007): [2000-01-01,
# 2100-01-01) UTC. In seconds that is [9.5e8, 4.1e9), in milliseconds [9.5e11, 4.1e12): the two
# numeric ranges do not overlap, so a number is read as seconds or as milliseconds by where it
# falls, and anything between or outside them (e.g. 253402300799, year 9999 in seconds) is
# rejected instead of being silently read as milliseconds.
TS_MIN = 946_684_800.0  # 2000-01-01T00:00:00Z
TS_MAX = 4_102_444_800.0  # 2100-01-01T00:00:00Z (exclusive)
TS_RANGE_TEXT = "2000-01-01T00:00:00Z (inclusive) to 2100-01-01T00:00:00Z (exclusive)"
DEFAULT_TOPIC_FILTER = "grid/sensors/#"


class Reading(NamedTuple):
    """One validated reading. `ts` is UTC epoch seconds (microsecond resolution). `seq` is the
    device's own reading counter (the JSON payload's optional `seq`, 0 ≤ seq < 2^32, one more per
    reading; `gridmon.domain.sequence` turns it into missing-reading counts), else None."""

    device_id: str
    ts: float
    voltage: float
    current: float
    temperature: float
    extra: dict[str, float] | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload could not be turned into a reading."""

    reason: str
    detail: str


MAX_TOPIC_CHARS = 256
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that could not be turned into a reading, as stored in `dead_letters`.

    `payload` may be a prefix of what was received: `size` and `sha256` describe the whole.
    Build one with `dead_letter()`, which cuts payload, topic and detail to their bounds."""

    received_at: float
    topic: str
    payload: bytes
    reason: str
    detail: str
    size: int
    sha256: bytes

    @property
    def truncated(self) -> bool:
        return len(self.payload) < self.size


def dead_letter(
    received_at: float, topic: str, payload: bytes, reason: str, detail: str, *, keep_bytes: int
) -> DeadLetter:
    """A dead letter keeping at most `keep_bytes` of the payload (plus its size and SHA-256)."""
    return DeadLetter(
        received_at,
        topic[:MAX_TOPIC_CHARS].replace("\x00", "\\x00"),  # text columns cannot hold NUL
        payload[:keep_bytes],
        reason,
        detail[:MAX_DETAIL_CHARS].replace("\x00", "\\x00"),
        len(payload),
        hashlib.sha256(payload).digest(),
    )


# Reasons, as stored in dead_letters.reason and labelled in metrics.
TOO_LARGE = "too_large"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
MISSING_FIELD = "missing_field"
NON_NUMERIC = "non_numeric"
NON_FINITE = "non_finite"
BAD_DEVICE_ID = "bad_device_id"
OUT_OF_PHYSICAL_RANGE = "out_of_physical_range"
BAD_TIMESTAMP = "bad_timestamp"
FUTURE_TIMESTAMP = "future_timestamp"
DEVICE_MISMATCH = "device_mismatch"  # the payload's device_id is not the topic's device
TOO_COMPLEX = "too_complex"  # more objects/arrays or members than a reading can have
UNPARSEABLE = "unparseable"  # validation itself failed: a bug, but the payload is still recorded
SPARKPLUG_MALFORMED = "sparkplug_malformed"  # not a Sparkplug B protobuf payload, or not a Sparkplug topic
SPARKPLUG_NO_BIRTH = "sparkplug_no_birth"  # data by alias whose birth certificate never came
BAD_SEQ = "bad_seq"  # `seq` present but not an integer in [0, 2^32)
REASONS = (
    TOO_LARGE,
    NOT_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    NON_NUMERIC,
    NON_FINITE,
    BAD_DEVICE_ID,
    OUT_OF_PHYSICAL_RANGE,
    BAD_TIMESTAMP,
    FUTURE_TIMESTAMP,
    DEVICE_MISMATCH,
    TOO_COMPLEX,
    UNPARSEABLE,
    SPARKPLUG_MALFORMED,
    SPARKPLUG_NO_BIRTH,
    BAD_SEQ,
)


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _out_of_range(value: Any) -> _Invalid:
    text = value[:64] if isinstance(value, str) else value
    return _Invalid(BAD_TIMESTAMP, f"timestamp {text!r} is outside the accepted range {TS_RANGE_TEXT}")


def parse_timestamp(value: Any) -> float:
    """ISO-8601 (naive = UTC, any offset) or epoch seconds/milliseconds → UTC epoch seconds,
    within [TS_MIN, TS_MAX) whatever the form."""
    if isinstance(value, bool):
        raise _Invalid(BAD_TIMESTAMP, f"timestamp {value!r} is not a time")
    if isinstance(value, int | float):
        try:
            ts = float(value)
        except OverflowError:  # an integer wider than a double (the lenient JSON parser allows it)
            raise _Invalid(BAD_TIMESTAMP, "timestamp is too large") from None
        if not math.isfinite(ts):
            raise _Invalid(BAD_TIMESTAMP, f"timestamp {value!r} is not a valid epoch")
        if TS_MIN <= ts < TS_MAX:
            return round(ts, 6)
        if TS_MIN * 1000.0 <= ts < TS_MAX * 1000.0:
            return round(ts / 1000.0, 6)
        raise _out_of_range(value)
    if isinstance(value, str):
        if len(value) > 64:
            raise _Invalid(BAD_TIMESTAMP, f"timestamp {value[:64]!r}… is longer than 64 characters")
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            ts = parsed.timestamp()
        except ValueError:
            raise _Invalid(BAD_TIMESTAMP, f"timestamp {value!r} is not ISO-8601") from None
        except OverflowError:  # year 1 with a positive offset is before datetime.min in UTC
            raise _out_of_range(value) from None
        if not TS_MIN <= ts < TS_MAX:
            raise _out_of_range(value)
        return ts
    raise _Invalid(BAD_TIMESTAMP, f"timestamp of type {type(value).__name__} is not a time")


def _metric(obj: dict[str, Any], name: str) -> float:
    try:
        value = obj[name]
    except KeyError:
        raise _Invalid(MISSING_FIELD, f"field {name!r} is missing") from None
    if type(value) is float:
        number = value
    elif type(value) is int:
        try:
            number = float(value)
        except OverflowError:
            raise _Invalid(NON_FINITE, f"field {name!r} is too large for a double") from None
    else:
        raise _Invalid(NON_NUMERIC, f"field {name!r} is {type(value).__name__}, not a number")
    if not math.isfinite(number):
        raise _Invalid(NON_FINITE, f"field {name!r} is {number}")
    low, high = PHYSICAL_LIMITS[name]
    if number < low or number > high:
        raise _Invalid(OUT_OF_PHYSICAL_RANGE, f"{name}={number} outside physical range [{low}, {high}]")
    return number


def parse_seq(value: Any) -> int | None:
    """The payload's `seq`: None when absent, else an integer in [0, 2^32) (JSON `7`, or `7.0`)."""
    if value is None:
        return None
    if type(value) is int:
        number = value
    elif type(value) is float and value.is_integer():
        number = int(value)
    else:
        shown = value[:40] if isinstance(value, str) else value
        raise _Invalid(BAD_SEQ, f"seq {shown!r} is not a non-negative integer")
    if not 0 <= number < SEQ_MODULUS:
        raise _Invalid(BAD_SEQ, f"seq {number} is outside [0, 2^32)")
    return number


def _extra_metrics(obj: dict[str, Any]) -> dict[str, float] | None:
    """Further numeric metrics: unknown numeric top-level keys and the members of `extra`.

    Non-numeric unknown keys (firmware strings, flags) are metadata and are ignored.
    """
    found: dict[str, float] = {}
    nested = obj.get("extra")
    sources: list[dict[str, Any]] = [obj]
    if isinstance(nested, dict):
        if len(nested) > MAX_EXTRA_METRICS:
            raise _Invalid(NON_NUMERIC, f"{len(nested)} extra metrics, at most {MAX_EXTRA_METRICS} allowed")
        sources.append(nested)
    elif nested is not None:
        raise _Invalid(NOT_OBJECT, "field 'extra' must be an object of numbers")
    for source in sources:
        for key, value in source.items():
            if source is obj and key in _RESERVED:
                continue
            if type(value) not in (int, float):
                if source is nested:
                    raise _Invalid(NON_NUMERIC, f"extra metric {key!r} is not a number")
                continue
            if not _METRIC_NAME.fullmatch(key):
                raise _Invalid(NON_NUMERIC, f"extra metric name {key[:64]!r} is not a valid name")
            try:
                number = float(value)
            except OverflowError:
                raise _Invalid(NON_FINITE, f"extra metric {key!r} is too large for a double") from None
            if not math.isfinite(number):
                raise _Invalid(NON_FINITE, f"extra metric {key!r} is {number}")
            found[key] = number
    if len(found) > MAX_EXTRA_METRICS:
        raise _Invalid(NON_NUMERIC, f"{len(found)} extra metrics, at most {MAX_EXTRA_METRICS} allowed")
    return found or None


def valid_device_id(value: str) -> bool:
    """Whether `value` is a device id (DEVICE_ID_RULE)."""
    return len(value) <= DEVICE_ID_MAX and _DEVICE_ID.match(value) is not None


@functools.lru_cache(maxsize=8)
def _compiled_filter(topic_filter: str) -> tuple[str | None, list[str]]:
    """(prefix for a plain `<prefix>#` filter or None, the filter's levels with `#` as `+`)."""
    levels = topic_filter.split("/")
    if levels[-1] == "#":
        levels[-1] = "+"
    plain = topic_filter.endswith("/#") and "+" not in topic_filter and topic_filter.count("#") == 1
    return (topic_filter[:-1] if plain else None), levels


def device_from_topic(topic: str, topic_filter: str = DEFAULT_TOPIC_FILTER) -> str | None:
    """The device id a topic names under the subscription filter, or None when the topic does not
    have the filter's shape: `grid/sensors/#` takes exactly one level after `grid/sensors/`
    (`grid/sensors/a/b/c` names no device), a trailing `+` takes that level."""
    prefix, want = _compiled_filter(topic_filter)
    if prefix is not None:  # the usual case, on the hot path: no split
        if not topic.startswith(prefix):
            return None
        device = topic[len(prefix) :]
        return device if device and "/" not in device else None
    have = topic.split("/")
    if len(have) != len(want):
        return None
    for pattern, level in zip(want, have, strict=True):
        if pattern != "+" and pattern != level:
            return None
    return have[-1] or None


def _decode(payload: bytes | bytearray) -> Any:
    """The JSON value of a payload: UTF-8 without a byte-order mark, a bounded number of objects
    and arrays. NaN/Infinity literals are parsed (the lenient parser) so the rejection names them."""
    if payload[:3] == b"\xef\xbb\xbf":
        raise _Invalid(NOT_JSON, "payload starts with a UTF-8 byte-order mark: send UTF-8 JSON without one")
    if b"\x00" in payload:
        raise _Invalid(NOT_JSON, "payload contains NUL bytes (UTF-16 or UTF-32?): JSON must be UTF-8")
    containers = payload.count(b"{") + payload.count(b"[")
    if containers > MAX_CONTAINERS:
        raise _Invalid(TOO_COMPLEX, f"payload has {containers} objects/arrays, at most {MAX_CONTAINERS} allowed")
    colons = payload.count(b":")  # a cheap upper estimate of members; the exact count follows parsing
    if colons > 2 * MAX_MEMBERS:
        raise _Invalid(TOO_COMPLEX, f"payload has {colons} colons, a reading at most {MAX_MEMBERS} members")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        error = exc
    # orjson refuses NaN/Infinity literals and integers wider than 64 bits; the lenient parser
    # (from text, so it never guesses another encoding) lets them reach the non_finite check so the
    # dead letter names the real problem. It is about 20 times slower, so its input is bounded too.
    if b"NaN" in payload or b"Infinity" in payload or "number" in str(error):
        if payload.count(b",") > 4 * MAX_MEMBERS:
            raise _Invalid(TOO_COMPLEX, f"payload has more than {4 * MAX_MEMBERS} values and is not strict JSON")
        try:
            return json.loads(bytes(payload).decode("utf-8"))
        except (ValueError, RecursionError):
            pass
    raise _Invalid(NOT_JSON, f"not JSON: {error}"[:200])


def parse_reading(
    topic: str,
    payload: bytes | bytearray,
    now: float,
    *,
    max_payload_bytes: int = 64 * 1024,
    max_future_s: float = 300.0,
    topic_filter: str = DEFAULT_TOPIC_FILTER,
) -> Reading | Rejection:
    """Decode and validate one MQTT payload received on `topic` (subscribed as `topic_filter`).
    Never raises for bad input."""
    if len(payload) > max_payload_bytes:
        return Rejection(TOO_LARGE, f"payload is {len(payload)} bytes, limit {max_payload_bytes}")
    try:
        obj = _decode(payload)
        if not isinstance(obj, dict):
            raise _Invalid(NOT_OBJECT, f"payload is a JSON {type(obj).__name__}, not an object")
        if len(obj) > MAX_MEMBERS:
            raise _Invalid(TOO_COMPLEX, f"payload has {len(obj)} members, at most {MAX_MEMBERS} allowed")
        device_id = _device_id(topic, topic_filter, obj.get("device_id"))
        raw_ts = obj.get("timestamp", obj.get("ts"))
        if raw_ts is None:
            raise _Invalid(MISSING_FIELD, "field 'timestamp' is missing")
        ts = parse_timestamp(raw_ts)
        if ts > now + max_future_s:
            raise _Invalid(
                FUTURE_TIMESTAMP, f"timestamp is {ts - now:.0f} s in the future (limit {max_future_s:.0f} s)"
            )
        voltage = _metric(obj, "voltage")
        current = _metric(obj, "current")
        temperature = _metric(obj, "temperature")
        raw_seq = obj.get("seq")
        seq = None if raw_seq is None else parse_seq(raw_seq)
        # Only look for further metrics when the payload has more than the fixed fields.
        fixed = 4 + ("device_id" in obj) + ("seq" in obj)
        extra = _extra_metrics(obj) if len(obj) > fixed else None
    except _Invalid as bad:
        return Rejection(bad.reason, bad.detail)
    return Reading(device_id, ts, voltage, current, temperature, extra, seq)


def _device_id(topic: str, topic_filter: str, claimed: Any) -> str:
    """The reading's device: the topic's, which the payload's `device_id` (when present) must repeat.
    The broker's ACL ties a device's login to its topic, so the topic is what identifies it."""
    from_topic = device_from_topic(topic, topic_filter)
    if from_topic is None:
        shape = topic_filter.replace("#", "<device_id>").replace("+", "<device_id>")
        raise _Invalid(BAD_DEVICE_ID, f"topic {topic[:120]!r} is not {shape}")
    if not valid_device_id(from_topic):
        raise _Invalid(BAD_DEVICE_ID, f"device id {from_topic[:80]!r} in the topic must be {DEVICE_ID_RULE}")
    if claimed is not None:
        if not isinstance(claimed, str) or not valid_device_id(claimed):
            raise _Invalid(BAD_DEVICE_ID, f"device_id {str(claimed)[:80]!r} must be {DEVICE_ID_RULE}")
        if claimed != from_topic:
            raise _Invalid(
                DEVICE_MISMATCH, f"device_id {claimed!r} differs from the topic's device {from_topic!r}"
            )
    return from_topic


(_V_LOW, _V_HIGH), (_I_LOW, _I_HIGH), (_T_LOW, _T_HIGH) = (PHYSICAL_LIMITS[m] for m in CORE_METRICS)
_VALID_IDS: set[str] = set()  # device ids already checked (a fleet's ids repeat on every message)
_VALID_IDS_MAX = 100_000


def reading_from_values(
    device_id: str,
    timestamp: float | None,
    values: dict[str, float],
    now: float,
    *,
    max_future_s: float = 300.0,
    seq: int | None = None,
) -> Reading | Rejection:
    """Validate already-decoded values (a binary protocol's metrics) like a JSON payload: the same
    device-id, timestamp, physical-range and extra-metric checks. `values` holds the core metrics
    and any further numeric ones by name."""
    # Fast path (bridge hot path): a known id, an epoch in seconds, the three core metrics within
    # their physical ranges (NaN fails every comparison) and nothing else. Anything else takes
    # the checked path below, which names the problem.
    if (
        len(values) == 3
        and device_id in _VALID_IDS
        and type(timestamp) is float
        and TS_MIN <= timestamp < TS_MAX
        and timestamp <= now + max_future_s
    ):
        voltage, current, temperature = values.get("voltage"), values.get("current"), values.get("temperature")
        if (
            voltage is not None
            and current is not None
            and temperature is not None
            and _V_LOW <= voltage <= _V_HIGH
            and _I_LOW <= current <= _I_HIGH
            and _T_LOW <= temperature <= _T_HIGH
        ):
            return Reading(device_id, round(timestamp, 6), voltage, current, temperature, None, seq)
    try:
        if device_id not in _VALID_IDS:
            if not valid_device_id(device_id):
                raise _Invalid(BAD_DEVICE_ID, f"device_id {device_id[:80]!r} must be {DEVICE_ID_RULE}")
            if len(_VALID_IDS) < _VALID_IDS_MAX:
                _VALID_IDS.add(device_id)
        if timestamp is None:
            raise _Invalid(MISSING_FIELD, "field 'timestamp' is missing")
        ts = parse_timestamp(timestamp)
        if ts > now + max_future_s:
            raise _Invalid(
                FUTURE_TIMESTAMP, f"timestamp is {ts - now:.0f} s in the future (limit {max_future_s:.0f} s)"
            )
        voltage = _metric(values, "voltage")
        current = _metric(values, "current")
        temperature = _metric(values, "temperature")
        extra = None
        if len(values) > len(CORE_METRICS):
            others = {k: v for k, v in values.items() if k not in _RESERVED}
            extra = _extra_metrics(others) if others else None
    except _Invalid as bad:
        return Rejection(bad.reason, bad.detail)
    return Reading(device_id, ts, voltage, current, temperature, extra, seq)
