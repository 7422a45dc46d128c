"""From findings to a risk score, a risk level and the actions that follow from each factor.

The score is a sum of points per factor, capped at 100; the table is in docs/maintenance.md.
Time to the limit dominates on purpose: it is the one factor that says *when*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gridmon.domain.units import DAY_S
from gridmon.maintenance.aging import AgingSummary
from gridmon.maintenance.factors import CurrentLoad, EpisodeSummary, VoltageStability
from gridmon.maintenance.model import RISK_LEVELS
from gridmon.maintenance.trend import Crossing, TrendFit

# (upper bound of days to the limit, points)
TIME_TO_LIMIT_POINTS = ((7.0, 75.0), (30.0, 50.0), (90.0, 30.0), (float("inf"), 15.0))
AT_LIMIT_POINTS = 90.0
RISING_UNDATED_POINTS = 10.0
NEAR_LIMIT_MARGIN_C = 10.0
NEAR_LIMIT_POINTS = 15.0
VOLTAGE_POINTS = 15.0
OVERLOAD_POINTS = 10.0
SPIKE_POINTS = 5.0
EPISODE_POINTS = {"low": 3.0, "medium": 8.0, "high": 15.0, "critical": 20.0}
AGING_POINTS = 10.0
# score ≥ bound → level
LEVEL_BOUNDS = ((75.0, "critical"), (50.0, "high"), (25.0, "medium"))

ACTIONS = {
    "at_limit": "Reduce load now and send a crew: temperature is at the critical limit",
    "temperature_rising": "Check cooling: fans, radiators, oil level and ventilation",
    "imminent": "Schedule a crew before the predicted date and consider reducing load until then",
    "near_limit": "Thermal (infrared) inspection of connections and windings",
    "voltage_unstable": "Inspect electrical connections, tap changer and the upstream supply",
    "overload": "Review load distribution; shift load or re-rate the device",
    "current_spikes": "Check circuit protection settings and look for downstream faults",
    "anomaly_episodes": "Review the device's recent anomaly alerts",
    "insulation_aging": "Plan an insulation assessment (dissolved-gas or furfural analysis)",
    "insufficient_history": "Collect more history before relying on a trend",
    "none": "Continue routine monitoring",
}


@dataclass(frozen=True, slots=True)
class Assessment:
    score: float
    level: str
    factors: list[dict[str, Any]]
    actions: list[str]


def level_for(score: float) -> str:
    for bound, level in LEVEL_BOUNDS:
        if score >= bound:
            return level
    return RISK_LEVELS[0]


def _factor(name: str, points: float, detail: str, **extra: Any) -> dict[str, Any]:
    return {"factor": name, "points": points, "detail": detail, **extra}


def assess(
    *,
    fit: TrendFit | None,
    crossing: Crossing | None,
    limit_c: float,
    now: float,
    trend_status: str,
    voltage: VoltageStability,
    load: CurrentLoad,
    overload_hours_flag: float,
    episodes: EpisodeSummary,
    aging: AgingSummary,
) -> Assessment:
    """Score the findings; each factor brings its points and its action."""
    factors: list[dict[str, Any]] = []
    if fit is None:
        factors.append(_factor("insufficient_history", 0.0, "Too little recent history to fit a temperature trend"))
    elif crossing is not None and crossing.already_above:
        factors.append(
            _factor(
                "at_limit", AT_LIMIT_POINTS, f"Temperature trend at {fit.level_at(now):.1f} °C, limit {limit_c:g} °C"
            )
        )
    elif crossing is not None:
        days = (crossing.when - now) / DAY_S
        points = next(p for bound, p in TIME_TO_LIMIT_POINTS if days <= bound)
        factors.append(
            _factor(
                "temperature_rising",
                points,
                f"Temperature rising {fit.slope:.2f} °C/day ({fit.slope_low:.2f}–{fit.slope_high:.2f}); "
                f"reaches {limit_c:g} °C in {days:.1f} days",
                slope_c_per_day=round(fit.slope, 4),
                days_to_limit=round(days, 2),
            )
        )
    elif trend_status == "beyond_horizon":
        factors.append(
            _factor(
                "temperature_rising",
                RISING_UNDATED_POINTS,
                f"Temperature rising {fit.slope:.2f} °C/day, limit beyond the forecast horizon",
                slope_c_per_day=round(fit.slope, 4),
            )
        )
    if fit is not None and (crossing is None or not crossing.already_above):
        level_now = fit.level_at(now)
        if level_now >= limit_c - NEAR_LIMIT_MARGIN_C:
            factors.append(
                _factor(
                    "near_limit",
                    NEAR_LIMIT_POINTS,
                    f"Temperature {level_now:.1f} °C, within {NEAR_LIMIT_MARGIN_C:g} °C of the limit",
                )
            )
    if voltage.unstable:
        ratios = [r for r in (voltage.ratio_own, voltage.ratio_fleet) if r is not None]
        factors.append(
            _factor("voltage_unstable", VOLTAGE_POINTS, f"Voltage variance {max(ratios):.1f}× its usual level")
        )
    if load.overload_hours >= overload_hours_flag:
        factors.append(
            _factor(
                "overload",
                OVERLOAD_POINTS,
                f"{load.overload_hours:.1f} h above the rated {load.rated_current:g} A",
                overload_hours=round(load.overload_hours, 3),
            )
        )
    if load.spikes > 0:
        spikes = f"{load.spikes} current spike{'' if load.spikes == 1 else 's'}"
        factors.append(_factor("current_spikes", SPIKE_POINTS, spikes, spikes=load.spikes))
    if episodes.max_severity is not None:
        factors.append(
            _factor(
                "anomaly_episodes",
                EPISODE_POINTS[episodes.max_severity],
                f"{episodes.count} anomaly episode{'' if episodes.count == 1 else 's'} recently"
                f" (worst: {episodes.max_severity})",
                episodes=episodes.count,
            )
        )
    if aging.equivalent_factor > 1.0:
        factors.append(
            _factor(
                "insulation_aging",
                AGING_POINTS,
                f"Insulation aging {aging.equivalent_factor:.2f}× the normal rate",
                equivalent_aging_factor=round(aging.equivalent_factor, 4),
            )
        )
    score = min(100.0, sum(f["points"] for f in factors))
    actions = _actions(factors, crossing, now)
    return Assessment(round(score, 2), level_for(score), factors, actions)


def _actions(factors: list[dict[str, Any]], crossing: Crossing | None, now: float) -> list[str]:
    actions: list[str] = []
    names = [f["factor"] for f in factors]
    if crossing is not None and not crossing.already_above and (crossing.when - now) / DAY_S <= 30:
        actions.append(ACTIONS["imminent"])
    for name in names:
        action = ACTIONS[name]
        if action not in actions:
            actions.append(action)
    if not actions or names == ["insufficient_history"]:
        actions.append(ACTIONS["none"])
    return actions
