"""Detector unit tests on small named cases: limits, safety, statistical, episodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmon.detection.base import Finding
from gridmon.detection.episodes import group_into_episodes
from gridmon.detection.limits import SafetyLimits, limits_for_device
from gridmon.detection.safety import check_safety
from gridmon.detection.statistical import detect_statistical

T0 = 1_767_225_600.0


def steady(n: int, *, device: str = "d1", seed: int = 0, interval: float = 2.0, cycle: float = 0.0) -> pd.DataFrame:
    """A healthy device: Gaussian noise around nominal values, optionally a daily cycle."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n) * interval
    load = np.cos(2 * np.pi * ts / 86400.0) * cycle
    return pd.DataFrame(
        {
            "device_id": device,
            "ts": ts,
            "voltage": 230.0 - 1.0 * load + rng.normal(0, 2.0, n),
            "current": 4.0 + 0.8 * load + rng.normal(0, 0.5, n),
            "temperature": 35.0 + 3.0 * load + rng.normal(0, 1.5, n),
        }
    )


def one_reading(**values: float) -> pd.DataFrame:
    row = {"device_id": "d1", "ts": T0, "voltage": 230.0, "current": 4.0, "temperature": 35.0, **values}
    return pd.DataFrame([row])


# --- limits ---------------------------------------------------------------------------------


def test_profile_overrides_limits() -> None:
    default = SafetyLimits()
    limits = limits_for_device({"nominal_voltage": 120.0, "rated_current": 16.0, "temperature_limit": 95.0}, default)
    assert limits.voltage == pytest.approx((108.0, 132.0))
    assert limits.current == (0.0, 16.0)
    assert limits.temperature == (0.0, 95.0)


def test_missing_or_bad_profile_keeps_defaults() -> None:
    default = SafetyLimits()
    assert limits_for_device(None, default) is default
    assert (
        limits_for_device({"nominal_voltage": None, "rated_current": -3, "temperature_limit": "x"}, default) == default
    )


# --- safety ---------------------------------------------------------------------------------


def test_260_volts_is_a_high_or_critical_voltage_finding() -> None:
    result = check_safety(one_reading(voltage=260.0))
    assert [f.metric for f in result.findings] == ["voltage"]
    assert result.findings[0].severity in ("high", "critical")
    assert "above the safe limit 250" in result.findings[0].description


def test_safety_severity_grows_with_excess() -> None:
    frame = pd.concat([one_reading(voltage=v) for v in (251.0, 254.0, 258.0, 275.0, 185.0)], ignore_index=True)
    frame["ts"] = T0 + np.arange(len(frame))
    severities = [f.severity for f in check_safety(frame).findings]
    assert severities == ["low", "medium", "high", "critical", "critical"]


def test_values_inside_limits_and_non_finite_values_are_not_findings() -> None:
    frame = pd.concat([one_reading(voltage=249.9), one_reading(temperature=float("nan"))], ignore_index=True)
    assert check_safety(frame).findings == []


def test_device_limits_override_the_default() -> None:
    frame = pd.concat([one_reading(current=12.0), one_reading(current=12.0)], ignore_index=True)
    frame.loc[1, "device_id"] = "big"
    result = check_safety(frame, {"big": SafetyLimits(current=(0.0, 16.0))})
    assert [f.device_id for f in result.findings] == ["d1"]


def test_safety_on_empty_and_partial_frames() -> None:
    empty = check_safety(pd.DataFrame(columns=["device_id", "ts", "voltage", "current", "temperature"]))
    assert empty.scored == 0 and empty.findings == []
    temp_only = pd.DataFrame({"device_id": ["d1"], "ts": [T0], "temperature": [90.0]})
    assert [f.metric for f in check_safety(temp_only).findings] == ["temperature"]


# --- statistical ----------------------------------------------------------------------------


def test_daily_cycle_gives_no_statistical_findings() -> None:
    frame = steady(43200, cycle=1.0)  # one day, every 2 s
    assert detect_statistical(frame).findings == []


def test_step_change_is_found_and_stays_found_while_it_lasts() -> None:
    frame = steady(3000)
    frame.loc[2000:2299, "temperature"] += 12.0  # 8 sigma for 10 minutes
    findings = detect_statistical(frame).findings
    rows = {int((f.ts - T0) / 2.0) for f in findings if f.metric == "temperature"}
    assert min(rows) <= 2003  # confirmed within a few readings
    assert len(rows & set(range(2000, 2300))) >= 290  # the baseline does not absorb the fault
    assert all(f.metric == "temperature" for f in findings)


def test_flat_line_is_caught() -> None:
    frame = steady(2000)
    frame.loc[1000:1099, "voltage"] = frame.loc[999, "voltage"]
    flats = [f for f in detect_statistical(frame).findings if "flat-line" in f.description]
    assert flats and {f.metric for f in flats} == {"voltage"}
    first = min(round((f.ts - T0) / 2.0) for f in flats)
    assert 1000 <= first <= 1010


def test_single_noisy_reading_needs_confirmation() -> None:
    frame = steady(2000)
    frame.loc[1500, "current"] += 2.0  # 4 sigma once: noise-like, not confirmed
    frame.loc[1700, "current"] += 5.0  # 10 sigma: strong on its own
    rows = {round((f.ts - T0) / 2.0) for f in detect_statistical(frame).findings}
    assert 1500 not in rows and 1700 in rows


@pytest.mark.parametrize("n", [0, 1, 3, 50])
def test_short_input_is_safe(n: int) -> None:
    frame = steady(n)
    result = detect_statistical(frame)
    assert result.scored == n and result.findings == []


def test_non_finite_values_do_not_break_the_detector() -> None:
    frame = steady(1200)
    frame.loc[::7, "current"] = np.nan
    frame.loc[500, "voltage"] = np.inf
    result = detect_statistical(frame)
    assert all(np.isfinite(f.value) for f in result.findings)


def test_history_is_context_only() -> None:
    frame = steady(1500)
    history, new = frame.iloc[:1000], frame.iloc[1000:].copy()
    new.loc[1200:1260, "temperature"] += 15.0
    findings = detect_statistical(new, history).findings
    assert findings and min(f.ts for f in findings) >= new["ts"].min()


# --- episodes -------------------------------------------------------------------------------


def _finding(ts: float, severity: str = "low", metric: str = "voltage", detector: str = "statistical") -> Finding:
    return Finding("d1", ts, metric, 240.0, severity, detector, 1.0, "x")


def test_fifty_consecutive_findings_are_one_episode() -> None:
    findings = [_finding(T0 + 2 * k, "critical" if k == 20 else "low") for k in range(50)]
    episodes = group_into_episodes(findings, max_gap_s=60)
    assert len(episodes) == 1
    ep = episodes[0]
    assert ep.findings_count == 50 and ep.peak_severity == "critical"
    assert (ep.start, ep.end) == (T0, T0 + 98)


def test_quiet_gap_splits_episodes_and_metrics_stay_apart() -> None:
    findings = [_finding(T0), _finding(T0 + 10), _finding(T0 + 500), _finding(T0 + 10, metric="current")]
    episodes = group_into_episodes(findings, max_gap_s=60)
    assert [(e.metric, e.findings_count) for e in episodes] == [("voltage", 2), ("current", 1), ("voltage", 1)]


def test_scan_sized_steps_find_what_one_pass_finds_after_stuck_sensors() -> None:
    # A scan's history window can start inside a stuck stretch; its baseline must not be built
    # from the frozen values (that once produced long false episodes after each stuck sensor).
    from gridmon.detection.pipeline import detect
    from gridmon.simulator.dataset import generate_dataset

    ds = generate_dataset(devices=4, duration_s=6 * 3600, kinds=["stuck_sensor"], seed=3, faults_per_device_day=8)
    df = ds.readings
    one_pass = {(f.device_id, f.ts, f.metric) for f in detect(df)}
    stepped: set[tuple[str, float, str]] = set()
    t, end = df.ts.min(), df.ts.max()
    while t <= end:
        frame = df[(df.ts >= t) & (df.ts < t + 60)]
        history = df[(df.ts >= t - 7200) & (df.ts < t)]
        if len(frame):
            stepped |= {(f.device_id, f.ts, f.metric) for f in detect(frame, history=history if len(history) else None)}
        t += 60
    assert one_pass  # the stuck sensors are found
    assert stepped == one_pass
