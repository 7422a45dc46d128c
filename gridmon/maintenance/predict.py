"""One device's maintenance prediction from its bucket frame: the pure core every caller shares.

`predict_device` takes what the database (or a simulator) says about a device — the bucket frame
of its recent readings, its newest reading, its profile, the fleet's voltage variance and its
anomaly episodes — and returns a `MaintenancePrediction`. `predict_from_readings` builds those
inputs from raw readings first (evaluation, tests). No I/O here.

"Now" for the trend is the newest reading's time: readings are ordered oldest → newest before
anything looks at them, so the current reading is the last one, never the first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from gridmon.domain.maintenance import CurrentReading
from gridmon.domain.units import DAY_S
from gridmon.maintenance.aging import summarise_aging
from gridmon.maintenance.buckets import bucketize, covered_seconds, window
from gridmon.maintenance.factors import current_load, summarise_episodes, voltage_stability
from gridmon.maintenance.model import DeviceProfile, Episode, MaintenanceConfig, MaintenancePrediction
from gridmon.maintenance.risk import assess
from gridmon.maintenance.trend import Crossing, TrendFit, fit_trend, time_to_limit


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def newest_reading(readings: pd.DataFrame) -> CurrentReading | None:
    """The reading with the largest timestamp (rows may come in any order)."""
    if readings.empty:
        return None
    row = readings.sort_values("ts", kind="stable").iloc[-1]
    return CurrentReading(float(row["ts"]), float(row["voltage"]), float(row["current"]), float(row["temperature"]))


def _confidence(
    fit: TrendFit | None,
    crossing: Crossing | None,
    now: float,
    observed_s: float,
    config: MaintenanceConfig,
    limit_c: float,
) -> float:
    """Data coverage of the window × precision of the answer (see docs/maintenance.md)."""
    if fit is None:
        return 0.0
    coverage = min(1.0, observed_s / config.lookback_s)
    if crossing is not None:
        if crossing.already_above:
            return round(coverage, 3)
        half_width = (crossing.high - crossing.low) / 2
        precision = 1.0 / (1.0 + half_width / max(crossing.when - now, DAY_S))
    else:
        # "No failure within the horizon" is sure when even the steepest plausible slope stays below it.
        worst = fit.slope_high
        reach = fit.level_at(now) + worst * config.horizon_days
        precision = 1.0 if worst <= 0 or reach < limit_c else 0.5
    return round(coverage * precision, 3)


def predict_device(
    device_id: str,
    buckets: pd.DataFrame,
    current: CurrentReading | None,
    profile: DeviceProfile,
    *,
    as_of: float,
    fleet_voltage_var: float | None = None,
    episodes: list[Episode] | None = None,
    config: MaintenanceConfig | None = None,
    computed_at: datetime | None = None,
) -> MaintenancePrediction:
    """The prediction for one device from its buckets over (as_of − lookback, as_of]."""
    config = config or MaintenanceConfig()
    computed_at = computed_at or datetime.now(UTC)
    buckets = buckets.sort_values("bucket", kind="stable").reset_index(drop=True)
    now = current.ts if current is not None else as_of
    covered = covered_seconds(buckets, config.bucket_s)

    fit: TrendFit | None = None
    span = float(buckets["t_mean"].max() - buckets["t_mean"].min()) if len(buckets) else 0.0
    if len(buckets) >= config.min_buckets and span >= config.min_history_s:
        fit = fit_trend(
            buckets["t_mean"].to_numpy(dtype=float),
            buckets["temp_median"].to_numpy(dtype=float),
            harmonics=config.harmonics,
            confidence=config.trend_confidence,
            detect_onset=config.detect_onset,
            min_segment_s=config.min_history_s,
        )
    crossing: Crossing | None = None
    reason = "insufficient_history"
    if fit is not None:
        crossing, reason = time_to_limit(
            fit,
            profile.temperature_limit,
            now=now,
            confidence=config.trend_confidence,
            decision_confidence=config.decision_confidence,
            min_slope_c_per_day=config.min_slope_c_per_day,
            horizon_days=config.horizon_days,
            extrapolation_factor=config.extrapolation_factor,
        )

    voltage = voltage_stability(
        buckets, recent_start=as_of - config.recent_s, fleet_var=fleet_voltage_var, ratio_flag=config.voltage_ratio_flag
    )
    load = current_load(buckets, covered, rated_current=profile.rated_current)
    episode_summary = summarise_episodes(episodes or [], since=as_of - config.episodes_s)
    aging = summarise_aging(buckets["faa_mean"].to_numpy(dtype=float), covered)
    assessment = assess(
        fit=fit,
        crossing=crossing,
        limit_c=profile.temperature_limit,
        now=now,
        trend_status=reason,
        voltage=voltage,
        load=load,
        overload_hours_flag=config.overload_hours_flag,
        episodes=episode_summary,
        aging=aging,
    )
    inputs: dict[str, Any] = {
        "as_of": _dt(as_of).isoformat(),
        "window_start": _dt(as_of - config.lookback_s).isoformat(),
        "readings": int(buckets["n"].sum()) if len(buckets) else 0,
        "current": current.as_dict() if current is not None else None,
        "profile": {"temperature_limit": profile.temperature_limit, "rated_current": profile.rated_current},
        "trend": fit.as_dict() if fit is not None else None,
        "time_to_limit": {
            "status": reason,
            "days": round((crossing.when - now) / DAY_S, 3) if crossing is not None else None,
        },
        "voltage": voltage.as_dict(),
        "load": load.as_dict(),
        "episodes": episode_summary.as_dict(),
        "aging": {**aging.as_dict(), "hotspot_rise_c": config.hotspot_rise_c},
        "method": {
            "lookback_s": config.lookback_s,
            "bucket_s": config.bucket_s,
            "trend_confidence": config.trend_confidence,
            "decision_confidence": config.decision_confidence,
            "horizon_days": config.horizon_days,
            "extrapolation_factor": config.extrapolation_factor,
        },
    }
    return MaintenancePrediction(
        device_id=device_id,
        predicted_failure_date=_dt(crossing.when) if crossing is not None else None,
        interval=(_dt(crossing.low), _dt(crossing.high)) if crossing is not None else None,
        confidence=_confidence(fit, crossing, now, float(covered.sum()), config, profile.temperature_limit),
        risk_score=assessment.score,
        risk_level=assessment.level,
        risk_factors=assessment.factors,
        recommended_actions=assessment.actions,
        computed_at=computed_at,
        inputs=inputs,
    )


def fit_for_readings(
    readings: pd.DataFrame, profile: DeviceProfile, *, as_of: float, config: MaintenanceConfig | None = None
) -> TrendFit | None:
    """The temperature trend `predict_from_readings` would fit on these readings (None: too little data)."""
    config = config or MaintenanceConfig()
    recent = window(readings, start=as_of - config.lookback_s, end=as_of)
    buckets = bucketize(
        recent,
        bucket_s=config.bucket_s,
        rated_current=profile.rated_current,
        spike_factor=config.spike_factor,
        rise_c=config.hotspot_rise_c,
    ).sort_values("bucket", kind="stable")
    span = float(buckets["t_mean"].max() - buckets["t_mean"].min()) if len(buckets) else 0.0
    if len(buckets) < config.min_buckets or span < config.min_history_s:
        return None
    return fit_trend(
        buckets["t_mean"].to_numpy(dtype=float),
        buckets["temp_median"].to_numpy(dtype=float),
        harmonics=config.harmonics,
        confidence=config.trend_confidence,
        detect_onset=config.detect_onset,
        min_segment_s=config.min_history_s,
    )


def predict_from_readings(
    readings: pd.DataFrame,
    profile: DeviceProfile,
    *,
    as_of: float,
    fleet_voltage_var: float | None = None,
    episodes: list[Episode] | None = None,
    config: MaintenanceConfig | None = None,
    computed_at: datetime | None = None,
) -> MaintenancePrediction:
    """The prediction from raw readings (columns ts epoch s, voltage, current, temperature)."""
    config = config or MaintenanceConfig()
    recent = window(readings, start=as_of - config.lookback_s, end=as_of)
    buckets = bucketize(
        recent,
        bucket_s=config.bucket_s,
        rated_current=profile.rated_current,
        spike_factor=config.spike_factor,
        rise_c=config.hotspot_rise_c,
    )
    return predict_device(
        profile.device_id,
        buckets,
        newest_reading(recent),
        profile,
        as_of=as_of,
        fleet_voltage_var=fleet_voltage_var,
        episodes=episodes,
        config=config,
        computed_at=computed_at,
    )
