"""Predictive maintenance, pure analysis: aging, trend, crossing, ordering, risk, the baseline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gridmon.domain.units import DAY_S
from gridmon.evaluation.maintenance_baseline import baseline_predict
from gridmon.maintenance.aging import NORMAL_LIFE_H, aging_factor, summarise_aging
from gridmon.maintenance.buckets import bucketize
from gridmon.maintenance.model import DeviceProfile, Episode, MaintenanceConfig
from gridmon.maintenance.predict import predict_from_readings
from gridmon.maintenance.trend import fit_trend, time_to_limit

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def series(
    *,
    days: float,
    slope: float,
    base: float = 35.0,
    noise: float = 0.5,
    amplitude: float = 3.0,
    interval_s: float = 120.0,
    onset_days: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Readings with a known linear trend after `onset_days`, a 24 h cycle and Gaussian noise."""
    rng = np.random.default_rng(seed)
    ts = START + np.arange(0.0, days * DAY_S, interval_s)
    d = (ts - START) / DAY_S
    temperature = (
        base
        + slope * np.maximum(d - onset_days, 0.0)
        + amplitude * np.sin(2 * math.pi * (d - 0.3))
        + rng.normal(0, noise, ts.size)
    )
    return pd.DataFrame(
        {
            "device_id": "dev",
            "ts": ts,
            "voltage": 230 + rng.normal(0, 1.0, ts.size),
            "current": 4 + rng.normal(0, 0.3, ts.size),
            "temperature": temperature,
        }
    )


def fit(readings: pd.DataFrame):
    """The trend as the task fits it: on 15-minute bucket medians."""
    b = bucketize(readings, bucket_s=900.0, rated_current=10.0, spike_factor=1.5, rise_c=25.0)
    return fit_trend(b.t_mean, b.temp_median, harmonics=2, confidence=0.9)


# --- IEEE C57.91 aging ---------------------------------------------------------------------


def test_aging_factor_matches_hand_computed_values():
    # exp(15000/383 - 15000/(θ+273)): 1 at 110 °C, e^(0.9966) at 120 °C, e^(-3.329) at 80 °C
    assert aging_factor(110.0) == pytest.approx(1.0, abs=1e-12)
    assert aging_factor(120.0) == pytest.approx(2.709, abs=0.001)
    assert aging_factor(80.0) == pytest.approx(0.0358, abs=0.0002)


def test_loss_of_life_integrates_the_factor_over_time():
    # 24 h at a 120 °C hot spot uses 24 × 2.709 h of normal life
    summary = summarise_aging([float(aging_factor(120.0))] * 24, [3600.0] * 24)
    assert summary.observed_hours == pytest.approx(24.0)
    assert summary.loss_of_life_hours == pytest.approx(24 * 2.7089, rel=1e-3)
    assert summary.loss_of_life_pct == pytest.approx(100 * 24 * 2.7089 / NORMAL_LIFE_H, rel=1e-3)
    assert summary.equivalent_factor == pytest.approx(2.7089, rel=1e-3)


def test_prediction_reports_aging_with_the_configured_hotspot_rise():
    readings = series(days=2, slope=0.0, base=85.0, noise=0.0, amplitude=0.0)
    config = MaintenanceConfig(hotspot_rise_c=25.0)
    p = predict_from_readings(
        readings, DeviceProfile("dev", temperature_limit=200.0), as_of=readings.ts.max(), config=config
    )
    # 85 °C sensor + 25 °C rise = the 110 °C reference: aging at exactly the normal rate
    assert p.inputs["aging"]["equivalent_aging_factor"] == pytest.approx(1.0, abs=1e-6)
    assert p.inputs["aging"]["loss_of_life_hours"] == pytest.approx(p.inputs["aging"]["observed_hours"], rel=1e-3)


# --- trend and crossing --------------------------------------------------------------------


def test_trend_recovers_a_known_slope_through_the_daily_cycle():
    r = series(days=7, slope=1.2, noise=1.0)
    fitted = fit(r)
    assert fitted is not None
    assert fitted.slope == pytest.approx(1.2, rel=0.03)
    assert fitted.slope_low < 1.2 < fitted.slope_high


def test_partial_days_do_not_leak_the_cycle_into_the_slope():
    # 2.4 days of a 5 °C daily swing and no trend: a plain line through it would tilt by ~1 °C/day
    r = series(days=2.4, slope=0.0, noise=0.2, amplitude=5.0)
    fitted = fit(r)
    assert fitted is not None
    assert abs(fitted.slope) < 0.1


def test_crossing_time_of_a_known_line():
    # 35 °C + 1.5 °C/day reaches 80 °C after 30 days; cut after 10 days: 20 days remain
    r = series(days=10, slope=1.5, noise=0.8)
    as_of = float(r.ts.max())
    p = predict_from_readings(r, DeviceProfile("dev"), as_of=as_of)
    truth = START + 30 * DAY_S
    assert p.predicted_failure_date is not None and p.interval is not None
    remaining = truth - as_of
    assert abs(p.predicted_failure_date.timestamp() - truth) / remaining < 0.03
    assert p.interval[0].timestamp() <= truth <= p.interval[1].timestamp()
    assert p.risk_level == "high"  # within 30 days
    assert any(f["factor"] == "temperature_rising" for f in p.risk_factors)
    assert any("cooling" in a for a in p.recommended_actions)


@pytest.mark.parametrize("slope", [0.0, -0.8])
def test_no_date_when_flat_or_falling(slope):
    r = series(days=7, slope=slope, noise=1.5, seed=3)
    p = predict_from_readings(r, DeviceProfile("dev"), as_of=float(r.ts.max()))
    assert p.predicted_failure_date is None and p.interval is None
    assert p.inputs["time_to_limit"]["status"] in {"flat_or_falling", "not_significant"}
    assert p.risk_level == "low"


def test_trend_follows_a_degradation_that_began_inside_the_window():
    # quiet for 4 days, then +3 °C/day: the week's average slope would be about half of that
    r = series(days=6.5, slope=3.0, onset_days=4.0, noise=1.0)
    fitted = fit(r)
    assert fitted is not None and fitted.onset is not None
    assert abs(fitted.onset - (START + 4 * DAY_S)) < 0.25 * DAY_S
    assert fitted.slope == pytest.approx(3.0, rel=0.05)


def test_time_to_limit_at_the_limit_is_now():
    r = series(days=3, slope=1.0, base=81.0, noise=0.3)
    fitted = fit(r)
    assert fitted is not None
    now = float(r.ts.max())
    crossing, status = time_to_limit(
        fitted, 80.0, now=now, confidence=0.9, decision_confidence=0.99, min_slope_c_per_day=0.05, horizon_days=365
    )
    assert status == "at_limit" and crossing is not None and crossing.when == now


def test_short_history_gives_no_trend():
    r = series(days=0.5, slope=5.0)
    p = predict_from_readings(r, DeviceProfile("dev"), as_of=float(r.ts.max()))
    assert p.predicted_failure_date is None
    assert p.inputs["trend"] is None
    assert p.risk_factors[0]["factor"] == "insufficient_history"
    assert p.confidence == 0.0


# --- the newest reading is the current one -------------------------------------------------


def test_newest_reading_is_the_current_one_whatever_the_row_order():
    r = series(days=5, slope=2.0, noise=0.5)
    newest = r.iloc[-1]
    as_of = float(r.ts.max())
    ascending = predict_from_readings(r, DeviceProfile("dev"), as_of=as_of)
    newest_first = predict_from_readings(r.iloc[::-1], DeviceProfile("dev"), as_of=as_of)
    shuffled = predict_from_readings(r.sample(frac=1.0, random_state=1), DeviceProfile("dev"), as_of=as_of)
    for p in (ascending, newest_first, shuffled):
        assert p.inputs["current"]["temperature"] == pytest.approx(newest.temperature)
        assert p.inputs["current"]["ts"] == pd.Timestamp(newest.ts, unit="s", tz="UTC").isoformat()
        assert p.predicted_failure_date == ascending.predicted_failure_date
    # the level "now" is the trend at the newest reading (~45 °C after 5 days at 2 °C/day), not at the oldest
    assert ascending.inputs["trend"]["level_now_c"] == pytest.approx(45.0, abs=0.5)


def test_baseline_reproduces_the_original_taking_the_oldest_reading_as_current():
    # daily means rise exactly 1 °C/day from 35 °C; after 10 days the device is at ~45 °C
    r = series(days=10, slope=1.0, noise=0.0, amplitude=0.0, interval_s=600)
    as_of = float(r.ts.max())
    b = baseline_predict(r, as_of=as_of, fetch_limit=None)
    assert b.projected and b.failure_at is not None
    # (70 − 35 °C oldest) / 1 °C/day = 35 days; from the newest (~45 °C) it would be ~25
    assert (b.failure_at - as_of) / DAY_S == pytest.approx(35.0, abs=1.0)


def test_baseline_always_dates_even_a_healthy_device():
    r = series(days=3, slope=0.0)
    b = baseline_predict(r, as_of=float(r.ts.max()))
    assert b.failure_at is not None and not b.projected


# --- other factors --------------------------------------------------------------------------


def test_overload_spikes_voltage_and_episodes_become_factors_with_actions():
    r = series(days=3, slope=0.0, noise=0.3)
    last_day = r.ts > r.ts.max() - DAY_S
    r.loc[last_day, "voltage"] = 230 + np.random.default_rng(5).normal(0, 6.0, int(last_day.sum()))
    heavy = (r.ts > r.ts.max() - 3 * 3600) & (r.ts <= r.ts.max() - 3600)
    r.loc[heavy, "current"] = 12.0
    r.loc[r.index[-10], "current"] = 25.0
    episodes = [Episode("temperature", "zscore", "high", "open", float(r.ts.max()) - 3600)]
    p = predict_from_readings(r, DeviceProfile("dev", rated_current=10.0), as_of=float(r.ts.max()), episodes=episodes)
    names = {f["factor"] for f in p.risk_factors}
    assert {"voltage_unstable", "overload", "current_spikes", "anomaly_episodes"} <= names
    assert p.inputs["load"]["overload_hours"] == pytest.approx(2.0, abs=0.1)
    assert p.inputs["load"]["spikes"] == 1
    assert any("connections" in a for a in p.recommended_actions)
    assert any("load distribution" in a for a in p.recommended_actions)
    assert p.risk_level in {"medium", "high"}
