"""Plain data of predictive maintenance that several layers share: the analysis
(`gridmon.maintenance`) produces and reads them, storage reads and writes them, the API shows them.

Also the IEEE C57.91 aging constants, because both the pandas analysis and the SQL bucket query
evaluate the same aging expression with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_TEMPERATURE_LIMIT_C = 80.0
DEFAULT_RATED_CURRENT_A = 10.0

AGING_B = 15000.0
REFERENCE_HOTSPOT_C = 110.0
KELVIN = 273.0
# exp(B/383) at the 110 °C reference; kept as the standard's 383 (= 110 + 273).
AGING_A = AGING_B / (REFERENCE_HOTSPOT_C + KELVIN)


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """The per-device limits from `devices` (NULL columns fall back to the defaults)."""

    device_id: str
    temperature_limit: float = DEFAULT_TEMPERATURE_LIMIT_C
    rated_current: float = DEFAULT_RATED_CURRENT_A

    @classmethod
    def from_columns(
        cls, device_id: str, temperature_limit: float | None, rated_current: float | None
    ) -> DeviceProfile:
        return cls(
            device_id,
            DEFAULT_TEMPERATURE_LIMIT_C if temperature_limit is None else float(temperature_limit),
            DEFAULT_RATED_CURRENT_A if rated_current is None else float(rated_current),
        )


@dataclass(frozen=True, slots=True)
class Episode:
    """One anomaly episode of a device (a row of the alerts table)."""

    metric: str
    detector: str
    severity: str
    state: str
    opened_at: float


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(slots=True)
class MaintenancePrediction:
    """The maintenance outlook of one device at one moment."""

    device_id: str
    predicted_failure_date: datetime | None
    interval: tuple[datetime, datetime] | None
    confidence: float
    risk_score: float
    risk_level: str
    risk_factors: list[dict[str, Any]] = field(default_factory=list)
    recommended_actions: list[str] = field(default_factory=list)
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO-8601 datetimes), as the API and the Redis message carry it."""
        return {
            "device_id": self.device_id,
            "predicted_failure_date": _iso(self.predicted_failure_date),
            "interval": [_iso(self.interval[0]), _iso(self.interval[1])] if self.interval else None,
            "confidence": self.confidence,
            "risk_score": self.risk_score,
            "risk_level": self.risk_level,
            "risk_factors": self.risk_factors,
            "recommended_actions": self.recommended_actions,
            "computed_at": _iso(self.computed_at),
            "inputs": self.inputs,
        }


@dataclass(frozen=True, slots=True)
class CurrentReading:
    """The newest reading of a device."""

    ts: float
    voltage: float
    current: float
    temperature: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "ts": datetime.fromtimestamp(self.ts, tz=UTC).isoformat(),
            "voltage": self.voltage,
            "current": self.current,
            "temperature": self.temperature,
        }
