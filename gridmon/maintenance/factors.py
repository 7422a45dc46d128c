"""The non-thermal risk inputs: voltage instability, current spikes and overload, anomaly episodes.

Each works on the bucket frame (see `buckets`) or on plain records, so the task (buckets from
SQL), the evaluation and the tests (buckets from pandas) share them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridmon.maintenance.buckets import combined_variance
from gridmon.maintenance.model import RISK_LEVELS, Episode

# A stuck or perfectly regulated supply has ~0 variance; ratios against it would be noise.
VOLTAGE_VAR_FLOOR = 0.01  # V² (0.1 V standard deviation)
# The device's own baseline needs this many readings before a ratio against it means anything.
MIN_BASELINE_READINGS = 30


@dataclass(frozen=True, slots=True)
class VoltageStability:
    recent_var: float | None
    baseline_var: float | None
    fleet_var: float | None
    ratio_own: float | None
    ratio_fleet: float | None
    unstable: bool

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "recent_var": r(self.recent_var),
            "baseline_var": r(self.baseline_var),
            "fleet_var": r(self.fleet_var),
            "ratio_own": r(self.ratio_own),
            "ratio_fleet": r(self.ratio_fleet),
            "unstable": self.unstable,
        }


def voltage_stability(
    buckets: pd.DataFrame, *, recent_start: float, fleet_var: float | None, ratio_flag: float
) -> VoltageStability:
    """Recent voltage variance against the device's earlier variance and the fleet's recent one."""
    if buckets.empty:
        return VoltageStability(None, None, fleet_var, None, None, False)
    recent = buckets["t_mean"].to_numpy(dtype=float) > recent_start
    n = buckets["n"].to_numpy(dtype=float)
    mean = buckets["volt_mean"].to_numpy(dtype=float)
    var = buckets["volt_var"].to_numpy(dtype=float)
    if not recent.any():
        return VoltageStability(None, None, fleet_var, None, None, False)
    recent_var = combined_variance(n[recent], mean[recent], var[recent])
    baseline_var: float | None = None
    if n[~recent].sum() >= MIN_BASELINE_READINGS:
        baseline_var = combined_variance(n[~recent], mean[~recent], var[~recent])
    ratio_own = recent_var / max(baseline_var, VOLTAGE_VAR_FLOOR) if baseline_var is not None else None
    ratio_fleet = recent_var / max(fleet_var, VOLTAGE_VAR_FLOOR) if fleet_var is not None else None
    unstable = recent_var > VOLTAGE_VAR_FLOOR and any(
        r is not None and r >= ratio_flag for r in (ratio_own, ratio_fleet)
    )
    return VoltageStability(recent_var, baseline_var, fleet_var, ratio_own, ratio_fleet, unstable)


def fleet_median(values: Iterable[float | None]) -> float | None:
    """Median of the finite values (None when there are none)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(finite)) if finite else None


@dataclass(frozen=True, slots=True)
class CurrentLoad:
    rated_current: float
    mean_current: float | None
    max_current: float | None
    overload_hours: float
    spikes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rated_current": self.rated_current,
            "mean_current": None if self.mean_current is None else round(self.mean_current, 3),
            "max_current": None if self.max_current is None else round(self.max_current, 3),
            "overload_hours": round(self.overload_hours, 3),
            "spikes": self.spikes,
        }


def current_load(buckets: pd.DataFrame, covered_s: np.ndarray, *, rated_current: float) -> CurrentLoad:
    """Time above the rated current (bucket share of readings × time covered) and spike count."""
    if buckets.empty:
        return CurrentLoad(rated_current, None, None, 0.0, 0)
    n = buckets["n"].to_numpy(dtype=float)
    over_share = np.divide(buckets["cur_over"].to_numpy(dtype=float), n, out=np.zeros_like(n), where=n > 0)
    mean = float((buckets["cur_mean"].to_numpy(dtype=float) * n).sum() / n.sum())
    return CurrentLoad(
        rated_current=rated_current,
        mean_current=mean,
        max_current=float(buckets["cur_max"].max()),
        overload_hours=float((over_share * covered_s).sum() / 3600.0),
        spikes=int(buckets["cur_spikes"].sum()),
    )


@dataclass(slots=True)
class EpisodeSummary:
    count: int = 0
    open: int = 0
    max_severity: str | None = None
    by_severity: dict[str, int] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "open": self.open,
            "max_severity": self.max_severity,
            "by_severity": self.by_severity,
            "metrics": self.metrics,
        }


def summarise_episodes(episodes: Iterable[Episode], *, since: float) -> EpisodeSummary:
    """Anomaly episodes opened at or after `since`."""
    recent = [e for e in episodes if e.opened_at >= since]
    if not recent:
        return EpisodeSummary()
    known = [e.severity for e in recent if e.severity in RISK_LEVELS]
    return EpisodeSummary(
        count=len(recent),
        open=sum(1 for e in recent if e.state != "resolved"),
        max_severity=max(known, key=RISK_LEVELS.index) if known else None,
        by_severity=dict(Counter(e.severity for e in recent)),
        metrics=sorted({e.metric for e in recent}),
    )
