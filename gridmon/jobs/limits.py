"""Safety limits as configured: global defaults from settings, per-device overrides from profiles.

The profile rows come from `gridmon.storage.devices`, the override rule from
`gridmon.detection.limits`. `device_limits` reads the profiles of the given devices (the scan and
the dashboard: fresh every time). `CachedLimits` keeps every overriding profile for a while (the
ingest job: one query a minute per process instead of one per batch); a profile change reaches
the ingest path within `ttl_s`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import numpy as np
import psycopg

from gridmon.config import Settings, get_settings
from gridmon.detection.limits import SafetyLimits, limits_for_device
from gridmon.storage import db, devices

CORE_METRICS = ("voltage", "current", "temperature")


def default_limits(settings: Settings | None = None) -> SafetyLimits:
    """The global limits (GRIDMON_VOLTAGE_LIMITS, _CURRENT_LIMITS, _TEMPERATURE_LIMITS)."""
    settings = settings or get_settings()
    return SafetyLimits(
        voltage=tuple(settings.voltage_limits),  # type: ignore[arg-type]
        current=tuple(settings.current_limits),  # type: ignore[arg-type]
        temperature=tuple(settings.temperature_limits),  # type: ignore[arg-type]
    )


def device_limits(
    conn: psycopg.Connection, device_ids: Iterable[str] | None, default: SafetyLimits
) -> dict[str, SafetyLimits]:
    """Limits of the devices (all devices when None) whose profile overrides the defaults."""
    return {row["device_id"]: limits_for_device(row, default) for row in devices.limit_profiles(conn, device_ids)}


class CachedLimits:
    """Overriding device limits, reloaded at most every `ttl_s` seconds."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self.default = default_limits()
        self._limits: dict[str, SafetyLimits] = {}
        self._inner = _inner_band([self.default])
        self._expires = 0.0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        if time.monotonic() >= self._expires:
            with db.connection() as conn:
                self._limits = device_limits(conn, None, self.default)
            self._inner = _inner_band([self.default, *self._limits.values()])
            self._expires = time.monotonic() + self.ttl_s

    def get(self) -> dict[str, SafetyLimits]:
        with self._lock:
            self._refresh()
            return self._limits

    def inner_band(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) columns (3 × 1) inside every device's limits: values within them cannot
        violate any limit, so a batch entirely inside needs no per-device check."""
        with self._lock:
            self._refresh()
            return self._inner


def _inner_band(all_limits: list[SafetyLimits]) -> tuple[np.ndarray, np.ndarray]:
    lows = np.array([[max(getattr(lim, m)[0] for lim in all_limits)] for m in CORE_METRICS])
    highs = np.array([[min(getattr(lim, m)[1] for lim in all_limits)] for m in CORE_METRICS])
    return lows, highs
