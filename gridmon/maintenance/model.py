"""The tunable defaults of predictive maintenance (`MaintenanceConfig`).

The data it works on and produces (device profile, episode, prediction) are plain domain types in
`gridmon.domain.maintenance`, re-exported here. The analysis lives in `trend`, `aging`, `factors`
and `predict`; the tables in `gridmon.storage.predictions`. Defaults are constants of
`MaintenanceConfig` (not settings) so the job, the API, the evaluation and the tests all run the
same numbers unless a caller says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gridmon.domain.maintenance import DeviceProfile, Episode, MaintenancePrediction
from gridmon.domain.severity import SEVERITIES
from gridmon.domain.units import DAY_S

__all__ = [
    "RISK_LEVELS",
    "DeviceProfile",
    "Episode",
    "MaintenanceConfig",
    "MaintenancePrediction",
]

RISK_LEVELS = SEVERITIES
"""Risk levels are the project's one severity scale (low … critical)."""


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    """Defaults of the maintenance analysis (documented in docs/maintenance.md)."""

    lookback_s: float = 7 * DAY_S
    """History the temperature trend is fitted on."""

    bucket_s: float = 900.0
    """Readings are summarised in buckets of this width before fitting (SQL and pandas alike)."""

    min_history_s: float = DAY_S
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

    extrapolation_factor: float = 4.0
    """...nor those further away than this many times the span the trend was fitted on."""

    hotspot_rise_c: float = 25.0
    """Hot-spot temperature = sensor temperature + this rise (IEEE C57.91 aging; see docs)."""

    recent_s: float = DAY_S
    """Voltage variance and current statistics compare this recent span with the rest of the window."""

    voltage_ratio_flag: float = 4.0
    """Recent voltage variance this many times the device's own or the fleet's variance is unstable."""

    spike_factor: float = 1.5
    """A current reading above spike_factor × rated current is a spike."""

    overload_hours_flag: float = 1.0
    """Time above rated current in the window that becomes a risk factor."""

    episodes_s: float = 7 * DAY_S
    """Anomaly episodes opened this recently count."""

    notify_levels: tuple[str, ...] = ("high", "critical")
    """Risk levels published on Redis (once per change of level)."""

    def with_overrides(self, **changes: Any) -> MaintenanceConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
