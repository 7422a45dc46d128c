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
_DEVICE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_RESERVED = frozenset(("device_id", "timestamp", "ts", *CORE_METRICS, "extra"))
_EPOCH_MS_THRESHOLD = 1e11  # numbers above this are epoch milliseconds (year 5138 in seconds)


class Reading(NamedTuple):
    """One validated reading. `ts` is UTC epoch seconds (microsecond resolution)."""

    device_id: str
    ts: float
    voltage: float
    current: float
    temperature: float
    extra: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload could not be turned into a reading."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that could not be turned into a reading, as stored in `dead_letters`."""

    received_at: float
    topic: str
    payload: bytes
    reason: str
    detail: str


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
UNPARSEABLE = "unparseable"  # validation itself failed: a bug, but the payload is still recorded
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
    UNPARSEABLE,
)


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_timestamp(value: Any) -> float:
    """ISO-8601 (naive = UTC) or epoch seconds/milliseconds → UTC epoch seconds."""
    if isinstance(value, bool):
        raise _Invalid(BAD_TIMESTAMP, f"timestamp {value!r} is not a time")
    if isinstance(value, int | float):
        try:
            ts = float(value)
        except OverflowError:  # an integer wider than a double (the lenient JSON parser allows it)
            raise _Invalid(BAD_TIMESTAMP, "timestamp is too large") from None
        if not math.isfinite(ts) or ts < 0:
            raise _Invalid(BAD_TIMESTAMP, f"timestamp {value!r} is not a valid epoch")
        if ts > _EPOCH_MS_THRESHOLD:
            ts /= 1000.0
        if ts > 253402300799.0:  # 9999-12-31T23:59:59Z
            raise _Invalid(BAD_TIMESTAMP, f"timestamp {value!r} is beyond year 9999")
        return round(ts, 6)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(BAD_TIMESTAMP, f"timestamp {value[:64]!r} is not ISO-8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
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


def _extra_metrics(obj: dict[str, Any]) -> dict[str, float] | None:
    """Further numeric metrics: unknown numeric top-level keys and the members of `extra`.

    Non-numeric unknown keys (firmware strings, flags) are metadata and are ignored.
    """
    found: dict[str, float] = {}
    nested = obj.get("extra")
    sources: list[dict[str, Any]] = [obj]
    if isinstance(nested, dict):
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


def device_from_topic(topic: str) -> str:
    """The last level of the topic (`grid/sensors/<device_id>`)."""
    return topic.rsplit("/", 1)[-1]


def parse_reading(
    topic: str,
    payload: bytes | bytearray,
    now: float,
    *,
    max_payload_bytes: int = 64 * 1024,
    max_future_s: float = 300.0,
) -> Reading | Rejection:
    """Decode and validate one MQTT payload. Never raises for bad input."""
    if len(payload) > max_payload_bytes:
        return Rejection(TOO_LARGE, f"payload is {len(payload)} bytes, limit {max_payload_bytes}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        # orjson refuses NaN/Infinity literals; the lenient parser lets them reach the
        # non_finite check so the dead letter names the real problem.
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):
            return Rejection(NOT_JSON, f"not JSON: {exc}"[:200])
    if not isinstance(obj, dict):
        return Rejection(NOT_OBJECT, f"payload is a JSON {type(obj).__name__}, not an object")
    try:
        device_id = obj.get("device_id")
        if device_id is None:
            device_id = device_from_topic(topic)
        if not isinstance(device_id, str) or not _DEVICE_ID.fullmatch(device_id):
            raise _Invalid(BAD_DEVICE_ID, f"device_id {str(device_id)[:80]!r} must match [A-Za-z0-9_.:-]{{1,64}}")
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
        # Only look for further metrics when the payload has more than the fixed fields.
        fixed = 4 + ("device_id" in obj)
        extra = _extra_metrics(obj) if len(obj) > fixed else None
    except _Invalid as bad:
        return Rejection(bad.reason, bad.detail)
    return Reading(device_id, ts, voltage, current, temperature, extra)
