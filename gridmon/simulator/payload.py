"""What a simulated sensor puts on the wire.

Payload: `{"device_id", "timestamp", "voltage", "current", "temperature", "seq"}` as JSON (`seq`:
the device's reading counter, one more per reading, wrapping at 2^32; optional), timestamp in
ISO-8601 UTC with microseconds and offset (`2026-11-27T12:00:00.123456+00:00`), published to
`grid/sensors/<device_id>`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from gridmon.simulator.device import VALUE_DECIMALS

TOPIC_PREFIX = "grid/sensors"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def topic_for(device_id: str, prefix: str = TOPIC_PREFIX) -> str:
    """The MQTT topic a device publishes to."""
    return f"{prefix}/{device_id}"


def iso_utc(ts: float) -> str:
    """Epoch seconds → `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`."""
    return iso_utc_us(round(ts * 1_000_000))


def iso_utc_us(us: int) -> str:
    """Epoch microseconds → ISO-8601 UTC (integer arithmetic: no float rounding surprises)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")


class IsoStamper:
    """`iso_utc_us` for increasing times, several times faster: the date and time up to the
    second change once a second, so they are formatted once and reused."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, us: int) -> str:
        second, fraction = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{fraction:06d}+00:00"


def encode_reading(
    device_id: str, ts: float, voltage: float, current: float, temperature: float, seq: int | None = None
) -> bytes:
    """The JSON payload of one reading (values rounded as a real sensor would report them)."""
    payload: dict[str, object] = {
        "device_id": device_id,
        "timestamp": iso_utc(ts),
        "voltage": round(voltage, VALUE_DECIMALS),
        "current": round(current, VALUE_DECIMALS),
        "temperature": round(temperature, VALUE_DECIMALS),
    }
    if seq is not None:
        payload["seq"] = seq % 2**32
    return orjson.dumps(payload)
