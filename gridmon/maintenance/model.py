"""Plain data of predictive maintenance: the tunable defaults, a device profile, the prediction.

Everything here is inert data. The analysis lives in `trend`, `aging`, `factors` and `predict`;
storage in `storage`. Defaults are constants of `MaintenanceConfig` (not settings) so the task,
the API, the evaluation and the tests all run the same numbers unless a caller says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

RISK_LEVELS = ("low", "medium", "high", "critical")
DEFAULT_TEMPERATURE_LIMIT_C = 80.0
DEFAULT_RATED_CURRENT_A = 10.0
PREDICT_INTERVAL_S = 15 * 60.0
"""How often beat runs `workers.maintenance.predict` (a settings field can replace it later)."""


def risk_rank(level: str) -> int:
    """0 for low … 3 for critical."""
    return RISK_LEVELS.index(level)


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    """Defaults of the maintenance analysis (documented in docs/maintenance.md)."""

    lookback_s: float = 7 * 86400.0
    """History the temperature trend is fitted on."""

    bucket_s: float = 900.0
    """Readings are summarised in buckets of this width before fitting (SQL and pandas alike)."""

    min_history_s: float = 86400.0
    """Shortest span that can carry a trend: one daily load cycle, or the cycle and the trend blur."""

    min_buckets: int = 24
    """Fewest non-empty buckets a trend is fitted on."""

    harmonics: int = 2
    """Sine/cosine pairs of the 24 h load cycle removed before the fit."""

    trend_confidence: float = 0.90
    """Confidence degree of the Theil–Sen slope interval, hence of the failure-date interval."""

    decision_confidence: float = 0.99
    """A failure date is given only when the slope is above zero at this confidence degree."""

    detect_onset: bool = True
    """Fit the trend after a change of slope found in the window (see `trend.find_onset`)."""

    min_slope_c_per_day: float = 0.05
    """Slopes below this are called flat: no failure date."""

    horizon_days: float = 365.0
    """Crossings further away than this are not dated (a straight line is no forecast that far)."""

    hotspot_rise_c: float = 25.0
    """Hot-spot temperature = sensor temperature + this rise (IEEE C57.91 aging; see docs)."""

    recent_s: float = 86400.0
    """Voltage variance and current statistics compare this recent span with the rest of the window."""

    voltage_ratio_flag: float = 4.0
    """Recent voltage variance this many times the device's own or the fleet's variance is unstable."""

    spike_factor: float = 1.5
    """A current reading above spike_factor × rated current is a spike."""

    overload_hours_flag: float = 1.0
    """Time above rated current in the window that becomes a risk factor."""

    episodes_s: float = 7 * 86400.0
    """Anomaly episodes opened this recently count."""

    notify_levels: tuple[str, ...] = ("high", "critical")
    """Risk levels published on Redis (once per change of level)."""

    def with_overrides(self, **changes: Any) -> MaintenanceConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


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
