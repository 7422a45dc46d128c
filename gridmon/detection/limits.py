"""Safe operating limits: the global defaults and how a device profile overrides them.

A reading outside these limits is valid (it is stored) and is exactly what the safety check
exists to report. Limits are closed intervals: a value equal to a limit is still safe.

Device profile keys (columns of `devices`, NULL or absent = the default applies):
- `nominal_voltage`: the band becomes nominal ± 10 % (230 V → 207–253 V).
- `rated_current`: the band becomes 0 … rated_current. The rating is the maximum continuous
  current the equipment is built for, so anything above it is already an overload; no headroom
  factor is added on top.
- `temperature_limit`: the upper temperature limit; the lower limit stays the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

NOMINAL_VOLTAGE_TOLERANCE = 0.10


@dataclass(frozen=True)
class SafetyLimits:
    """Inclusive (low, high) safe range per core metric."""

    voltage: tuple[float, float] = (200.0, 250.0)
    current: tuple[float, float] = (0.0, 10.0)
    temperature: tuple[float, float] = (0.0, 80.0)

    def for_metric(self, metric: str) -> tuple[float, float] | None:
        """The range of `metric`, or None for metrics without a safety limit."""
        value = getattr(self, metric, None) if metric in ("voltage", "current", "temperature") else None
        return value


def _positive(profile: Mapping[str, Any], key: str) -> float | None:
    raw = profile.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    # A zero or negative rating is a data-entry mistake, not a limit: keep the default.
    return value if math.isfinite(value) and value > 0 else None


def limits_for_device(profile: Mapping[str, Any] | None, default: SafetyLimits) -> SafetyLimits:
    """Limits for one device: `default` with whatever its profile overrides (see module doc)."""
    if not profile:
        return default
    limits = default
    nominal = _positive(profile, "nominal_voltage")
    if nominal is not None:
        limits = replace(
            limits,
            voltage=(nominal * (1.0 - NOMINAL_VOLTAGE_TOLERANCE), nominal * (1.0 + NOMINAL_VOLTAGE_TOLERANCE)),
        )
    rated = _positive(profile, "rated_current")
    if rated is not None:
        limits = replace(limits, current=(0.0, rated))
    temp_limit = _positive(profile, "temperature_limit")
    if temp_limit is not None and temp_limit > limits.temperature[0]:
        limits = replace(limits, temperature=(limits.temperature[0], temp_limit))
    return limits
