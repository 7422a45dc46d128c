"""The original design's maintenance predictor, reproduced as the evaluation's baseline row.

What the original `MaintenancePredictor.predict_maintenance` does, step for step:
1. reads the device's 1,000 most recent readings, newest first, and keeps those of the last
   30 days;
2. slope: mean temperature per calendar day, then the mean of the day-to-day differences
   (°C/day);
3. adds "confidence" for rules: slope > 0.5 °C/day (+0.3), sample voltage variance > 10 V²
   (+0.2), any current above mean + 2σ (+0.2), mean temperature of the last 7 days > 60 °C (+0.3);
4. if the slope is positive: takes `historical_data[-1]` as the current temperature — the last
   element of a newest-first list, i.e. the *oldest* reading — and projects a straight line to
   70 °C: failure = now + int((70 − that temperature) / slope) days, if between 0 and 365 days;
5. otherwise: now + 30 days if confidence > 0.5, else now + 90 days. It always returns a date
   (once it has any data) and never an interval.

"now" is the evaluation's cut time (the original used the wall clock). Reproduced for measurement
only; nothing in gridmon uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmon.domain.units import DAY_S

FETCH_LIMIT = 1000
LOOKBACK_DAYS = 30
CRITICAL_TEMP_C = 70.0
TREND_THRESHOLD = 0.5
VOLTAGE_VARIANCE_THRESHOLD = 10.0
CRITICAL_THRESHOLD_DAYS = 30
PREVENTIVE_INTERVAL_DAYS = 90


@dataclass(frozen=True, slots=True)
class BaselinePrediction:
    failure_at: float | None
    confidence: float
    projected: bool
    """True when the date came from the straight-line projection, False for the 30/90-day fallback."""


def _daily_rate(ordered: pd.DataFrame) -> float:
    days = pd.to_datetime(ordered["ts"], unit="s", utc=True).dt.date
    daily = ordered.groupby(days.to_numpy(), sort=True)["temperature"].mean()
    if len(daily) < 2:
        return 0.0
    dates = list(daily.index)
    temps = daily.to_numpy(dtype=float)
    changes = [
        (temps[k] - temps[k - 1]) / (dates[k] - dates[k - 1]).days
        for k in range(1, len(temps))
        if (dates[k] - dates[k - 1]).days > 0
    ]
    return float(np.mean(changes)) if changes else 0.0


def baseline_predict(
    readings: pd.DataFrame, *, as_of: float, fetch_limit: int | None = FETCH_LIMIT
) -> BaselinePrediction:
    """The original predictor on raw readings (columns ts, voltage, current, temperature) at `as_of`.

    `fetch_limit=None` lifts the original's 1,000-reading fetch (the evaluation reports both).
    """
    newest_first = readings.loc[readings["ts"] <= as_of].sort_values("ts", ascending=False, kind="stable")
    data = newest_first.head(fetch_limit) if fetch_limit is not None else newest_first
    data = data.loc[data["ts"] >= as_of - LOOKBACK_DAYS * DAY_S]
    if data.empty:
        return BaselinePrediction(None, 0.0, False)

    confidence = 0.0
    rate = _daily_rate(data.sort_values("ts", kind="stable"))
    if rate > TREND_THRESHOLD:
        confidence += 0.3
    voltages = data["voltage"].to_numpy(dtype=float)
    if len(voltages) > 1 and float(np.var(voltages, ddof=1)) > VOLTAGE_VARIANCE_THRESHOLD:
        confidence += 0.2
    currents = data["current"].to_numpy(dtype=float)
    std = float(np.std(currents, ddof=1)) if len(currents) > 1 else 0.0
    threshold = currents.mean() + 2 * std if std > 0 else currents.mean() + 2.0
    if bool((currents > threshold).any()):
        confidence += 0.2
    recent = data.loc[data["ts"] >= as_of - 7 * DAY_S, "temperature"]
    if len(recent) and float(recent.mean()) > 60:
        confidence += 0.3

    failure_at: float | None = None
    projected = False
    if rate > 0:
        current_temp = float(data["temperature"].iloc[-1])  # the oldest reading, as in the original
        days_to_critical = (CRITICAL_TEMP_C - current_temp) / rate
        if days_to_critical and 0 < days_to_critical < 365:
            failure_at = as_of + int(days_to_critical) * DAY_S
            projected = True
            confidence = min(confidence + 0.2, 0.9)
    if failure_at is None:
        fallback = CRITICAL_THRESHOLD_DAYS if confidence > 0.5 else PREVENTIVE_INTERVAL_DAYS
        failure_at = as_of + fallback * DAY_S
    return BaselinePrediction(failure_at, min(confidence, 0.95), projected)
