"""`gridmon eval maintenance --csv`: failure-time prediction replayed day by day on a real series.

The series (one device: a time column and `temperature`, optionally `current` and `voltage`)
is cut at every midnight (UTC) that has at least `MIN_HISTORY_DAYS` of readings before it and
`FUTURE_DAYS` after it. Each cut goes through `predict_from_readings` — the code the Celery task
runs after its SQL — with the device's limit as `temperature_limit`. Two questions:

1. Does it date a limit crossing that does not happen? `false_dates_7d_pct` /
   `false_dates_30d_pct`: share of cuts whose predicted date lies within 7 / 30 days although
   no reading of the next 7 / 30 days reaches the limit.
2. How good is its temperature path? The prediction's trend fit (`TrendFit.path`: the de-cycled
   temperature of the last hours, plus the daily cycle it fitted, plus the slope when a crossing
   was dated) is the temperature it expects. Its mean absolute error
   against the readings of the next day (`+24h`: every reading up to 24 h after the cut) and of
   the seventh day (`+7d`: readings 6–7 days after the cut), beside two naive forecasts from the
   same cut: persistence (the last reading) and seasonal naive (the reading at the same hour on
   the last observed day). Errors are over cuts where the prediction had a trend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from gridmon.domain.units import DAY_S
from gridmon.maintenance.model import DeviceProfile
from gridmon.maintenance.predict import fit_for_readings, predict_from_readings

MIN_HISTORY_DAYS = 1.0
FUTURE_DAYS = 30.0
HORIZONS = {"24h": (0.0, 1.0), "7d": (6.0, 7.0)}


def _cuts(ts: np.ndarray) -> np.ndarray:
    first = math.ceil((ts[0] + MIN_HISTORY_DAYS * DAY_S) / DAY_S) * DAY_S
    last = ts[-1] - FUTURE_DAYS * DAY_S
    return np.arange(first, last + 1.0, DAY_S) if last >= first else np.empty(0)


def _value_at_or_before(ts: np.ndarray, temp: np.ndarray, t: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(ts, t, side="right") - 1
    return np.where(idx >= 0, temp[np.maximum(idx, 0)], np.nan)


def prediction_path(
    past: pd.DataFrame, profile: DeviceProfile, as_of: float, t: np.ndarray, *, rising: bool
) -> np.ndarray:
    """The temperature path of the prediction made at `as_of` from `past`, at times `t`."""
    fit = fit_for_readings(past, profile, as_of=as_of)
    return fit.path(t, rising=rising) if fit is not None else np.full(t.shape, np.nan)


def replay(readings: pd.DataFrame, *, limit_c: float, device_id: str = "series") -> dict[str, Any]:
    """The report of the module docstring for one device's readings (columns ts, temperature, …)."""
    frame = readings.sort_values("ts", kind="stable").reset_index(drop=True)
    for column in ("voltage", "current"):
        if column not in frame.columns:
            frame[column] = np.nan
    frame = frame.dropna(subset=["temperature"]).reset_index(drop=True)
    ts = frame["ts"].to_numpy(dtype=float)
    temp = frame["temperature"].to_numpy(dtype=float)
    profile = DeviceProfile(device_id, temperature_limit=limit_c)
    cuts = _cuts(ts) if ts.size else np.empty(0)
    dated = {7: 0, 30: 0}
    false = {7: 0, 30: 0}
    errors: dict[str, dict[str, list[float]]] = {
        h: {"gridmon": [], "persistence": [], "seasonal_naive": []} for h in HORIZONS
    }
    with_trend = 0
    for as_of in cuts:
        past = frame.loc[frame["ts"] <= as_of]
        if past.empty:
            continue
        prediction = predict_from_readings(past, profile, as_of=float(as_of))
        when = prediction.predicted_failure_date
        for days in dated:
            if when is not None and when.timestamp() - as_of <= days * DAY_S:
                dated[days] += 1
                ahead = temp[(ts > as_of) & (ts <= as_of + days * DAY_S)]
                false[days] += int(not (ahead >= limit_c).any())
        trend = prediction.inputs.get("trend")
        if not trend:
            continue
        with_trend += 1
        last = float(past["temperature"].iloc[-1])
        for horizon, (lo, hi) in HORIZONS.items():
            sel = (ts > as_of + lo * DAY_S) & (ts <= as_of + hi * DAY_S)
            t_target, actual = ts[sel], temp[sel]
            if t_target.size == 0:
                continue
            path = prediction_path(past, profile, float(as_of), t_target, rising=when is not None)
            lag = np.ceil((t_target - as_of) / DAY_S) * DAY_S
            seasonal = _value_at_or_before(ts[ts <= as_of], temp[ts <= as_of], t_target - lag)
            errors[horizon]["gridmon"].append(float(np.mean(np.abs(path - actual))))
            errors[horizon]["persistence"].append(float(np.mean(np.abs(last - actual))))
            errors[horizon]["seasonal_naive"].append(float(np.nanmean(np.abs(seasonal - actual))))
    n = len(cuts)
    return {
        "cuts": n,
        "cuts_with_trend": with_trend,
        "limit_c": limit_c,
        "series_max_c": float(temp.max()) if temp.size else None,
        "reaches_limit": bool((temp >= limit_c).any()),
        "dated_7d_pct": 100.0 * dated[7] / n if n else None,
        "dated_30d_pct": 100.0 * dated[30] / n if n else None,
        "false_dates_7d_pct": 100.0 * false[7] / n if n else None,
        "false_dates_30d_pct": 100.0 * false[30] / n if n else None,
        "mae_c": {
            h: {method: (float(np.mean(v)) if v else None) for method, v in by_method.items()}
            for h, by_method in errors.items()
        },
    }
