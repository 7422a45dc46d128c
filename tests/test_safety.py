"""Unit tests on small named cases: safety limits and the episodes of safety findings.

The streaming anomaly detector has its own tests (`test_stream_detector.py`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmon.detection.base import Finding
from gridmon.detection.episodes import group_into_episodes
from gridmon.detection.limits import SafetyLimits, limits_for_device
from gridmon.detection.safety import check_safety

T0 = 1_767_225_600.0


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
