"""The pure dataset generator and the fault catalogue: determinism, truth bounds, magnitudes."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from gridmon.domain.units import DAY_S
from gridmon.simulator.catalogue import FAULT_KINDS, SAFE_LIMITS, Fault
from gridmon.simulator.dataset import Dataset, degradation_scenario, generate_dataset, healthy_scenario
from gridmon.simulator.device import NOISE_VOLTAGE


@pytest.fixture(scope="module")
def pair() -> tuple[Dataset, Dataset]:
    """A faulty dataset (one simulated day, 6 devices at 5-s intervals: every kind appears at
    least twice) and the same fleet without faults (same seed: same healthy values)."""

    def make(rate: float, fault_free: int) -> Dataset:
        return generate_dataset(
            seed=7,
            devices=6,
            duration_s=DAY_S,
            interval_s=5.0,
            faults_per_device_day=rate,
            fault_free_devices=fault_free,
        )

    return make(3.0, 1), make(0.0, 0)


def _device(frame: pd.DataFrame, device_id: str) -> pd.DataFrame:
    return frame[frame["device_id"] == device_id].reset_index(drop=True)


def test_same_seed_same_dataset_other_seed_other_dataset() -> None:
    a = generate_dataset(seed=3, devices=3, duration_s=7200.0)
    b = generate_dataset(seed=3, devices=3, duration_s=7200.0)
    c = generate_dataset(seed=4, devices=3, duration_s=7200.0)
    pd.testing.assert_frame_equal(a.readings, b.readings)
    assert a.truth == b.truth
    assert not a.readings["voltage"].equals(c.readings["voltage"])


def test_frame_shape_and_order(pair: tuple[Dataset, Dataset]) -> None:
    frame = pair[0].readings
    assert list(frame.columns) == ["device_id", "ts", "voltage", "current", "temperature"]
    assert all(frame[c].dtype == np.float64 for c in ("ts", "voltage", "current", "temperature"))
    assert frame["device_id"].map(type).eq(str).all()
    assert frame.equals(frame.sort_values(["device_id", "ts"], ignore_index=True))
    assert not frame.duplicated(["device_id", "ts"]).any()
    assert len(frame) == 6 * int(DAY_S // 5.0)


def test_every_kind_appears_and_truth_bounds_are_the_affected_readings(pair: tuple[Dataset, Dataset]) -> None:
    faulty, clean = pair
    assert {f.kind for f in faulty.truth} == set(FAULT_KINDS)
    for device_id in faulty.devices:
        mine = sorted((f for f in faulty.truth if f.device_id == device_id), key=lambda f: f.start)
        a, b = _device(faulty.readings, device_id), _device(clean.readings, device_id)
        assert a["ts"].equals(b["ts"])
        changed = (a[["voltage", "current", "temperature"]] != b[["voltage", "current", "temperature"]]).any(axis=1)
        inside = pd.Series(False, index=a.index)
        for fault in mine:
            span = (a["ts"] >= fault.start) & (a["ts"] <= fault.end)
            assert a["ts"].isin([fault.start, fault.end]).sum() == (1 if fault.start == fault.end else 2)
            # A degradation's first reading is its trend's onset: nothing added yet.
            affected = span & (a["ts"] > fault.start) if fault.kind == "degradation" else span
            assert changed[affected].all(), f"{fault.kind} on {device_id}: a reading inside the truth span is unchanged"
            inside |= span
        assert not changed[~inside].any(), f"{device_id}: readings changed outside every fault"
        for before, after in itertools.pairwise(mine):
            assert (a["ts"].between(before.end, after.start)).sum() >= 30, "faults are not separated"


def test_fault_free_devices_get_no_faults(pair: tuple[Dataset, Dataset]) -> None:
    faulty, clean = pair
    assert faulty.fault_free == ["sensor_5"]
    assert not [f for f in faulty.truth if f.device_id == "sensor_5"]
    pd.testing.assert_frame_equal(_device(faulty.readings, "sensor_5"), _device(clean.readings, "sensor_5"))


def _span(frame: pd.DataFrame, fault: Fault) -> pd.DataFrame:
    return frame[(frame["device_id"] == fault.device_id) & frame["ts"].between(fault.start, fault.end)]


def test_magnitudes_cross_limits_unless_subtle() -> None:
    data = generate_dataset(seed=11, devices=10, duration_s=DAY_S, interval_s=5.0, faults_per_device_day=6.0)
    v_lo, v_hi = SAFE_LIMITS["voltage"]
    checks = {
        "voltage_spike": lambda s: s["voltage"].max() > v_hi,
        "voltage_sag": lambda s: s["voltage"].min() < v_lo,
        "current_surge": lambda s: s["current"].max() > SAFE_LIMITS["current"][1],
        "overheating": lambda s: s["temperature"].max() > SAFE_LIMITS["temperature"][1],
    }
    seen = {kind: [0, 0] for kind in checks}
    for fault in data.truth:
        if fault.kind not in checks:
            continue
        span = _span(data.readings, fault)
        subtle = fault.params["subtle"] == 1.0
        seen[fault.kind][int(subtle)] += 1
        if subtle:
            assert span["voltage"].between(v_lo, v_hi).all()
            assert (span["current"] <= SAFE_LIMITS["current"][1]).all()
            assert (span["temperature"] <= SAFE_LIMITS["temperature"][1]).all()
        else:
            assert checks[fault.kind](span), f"{fault.kind} stayed inside the safe limits"
    # Both flavours exist for every electrical/thermal kind.
    assert all(normal and subtle for normal, subtle in seen.values()), seen


def test_subtle_sag_is_many_sigma_below_normal() -> None:
    data = generate_dataset(seed=11, devices=10, duration_s=DAY_S, interval_s=5.0, faults_per_device_day=6.0)
    sags = [f for f in data.truth if f.kind == "voltage_sag" and f.params["subtle"] == 1.0]
    assert sags
    for fault in sags:
        assert -fault.params["delta_v"] >= 6 * NOISE_VOLTAGE


def test_stuck_sensor_repeats_the_last_reading_for_at_least_30_readings(pair: tuple[Dataset, Dataset]) -> None:
    frame = pair[0].readings
    stuck = [f for f in pair[0].truth if f.kind == "stuck_sensor"]
    assert stuck
    for fault in stuck:
        device = _device(frame, fault.device_id)
        span = device[device["ts"].between(fault.start, fault.end)]
        assert len(span) >= 30
        before = device.loc[span.index[0] - 1, ["voltage", "current", "temperature"]]
        assert (span[["voltage", "current", "temperature"]] == before.to_numpy()).all().all()


def test_degradation_in_a_dataset_reaches_the_limit_at_its_failure_time(pair: tuple[Dataset, Dataset]) -> None:
    faulty, clean = pair
    degradations = [f for f in faulty.truth if f.kind == "degradation"]
    assert degradations
    for fault in degradations:
        assert fault.failure_at is not None and fault.start < fault.end <= fault.failure_at
        a, b = _span(faulty.readings, fault), _span(clean.readings, fault)
        added = a["temperature"].to_numpy() - b["temperature"].to_numpy()
        expected = fault.params["rise_c"] * (a["ts"].to_numpy() - fault.start) / (fault.failure_at - fault.start)
        np.testing.assert_allclose(added, expected, atol=2e-3)
        # The device's nominal temperature plus the rise is the limit.
        assert fault.params["limit_c"] == 80.0


def _daily_means(frame: pd.DataFrame, start: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean time and temperature of each whole day: the daily cycle averages out exactly."""
    day = ((frame["ts"] - start) // DAY_S).astype(int)
    whole = frame[day < day.max()]
    grouped = whole.groupby(day[day < day.max()])
    return grouped["ts"].mean().to_numpy() - start, grouped["temperature"].mean().to_numpy()


def test_degradation_scenario_failure_time_matches_the_trend() -> None:
    start = 1_767_225_600.0
    frame, failure_at = degradation_scenario(
        device_id="d1", start=start, interval_s=60.0, history_s=6 * DAY_S, slope_c_per_day=6.0, noise_c=1.0, seed=2
    )
    assert failure_at == pytest.approx(start + 45.0 / 6.0 * DAY_S)
    t, temp = _daily_means(frame, start)
    slope, intercept = np.polyfit(t, temp, 1)
    assert slope * DAY_S == pytest.approx(6.0, rel=0.01)
    crossing = start + (80.0 - intercept) / slope
    assert abs(crossing - failure_at) < 0.01 * (failure_at - start)


def test_degradation_scenario_without_noise_is_exactly_the_trend() -> None:
    start = 1_767_225_600.0
    frame, failure_at = degradation_scenario(
        device_id="d1",
        start=start,
        interval_s=300.0,
        history_s=2 * DAY_S,
        slope_c_per_day=10.0,
        noise_c=0.0,
        daily_amplitude_c=0.0,
        base_c=40.0,
        onset_s=DAY_S,
    )
    assert failure_at == pytest.approx(start + DAY_S + 4.0 * DAY_S)
    trend = 40.0 + 10.0 * np.maximum(frame["ts"].to_numpy() - start - DAY_S, 0.0) / DAY_S
    np.testing.assert_allclose(frame["temperature"], trend, atol=1e-3)


def test_healthy_scenario_has_no_trend() -> None:
    start = 1_767_225_600.0
    frame = healthy_scenario(device_id="h", start=start, interval_s=60.0, history_s=5 * DAY_S, noise_c=1.0)
    t, temp = _daily_means(frame, start)
    assert abs(np.polyfit(t, temp, 1)[0] * DAY_S) < 0.05
    assert frame["temperature"].max() < 50.0


def test_degradation_scenario_refuses_a_flat_slope() -> None:
    with pytest.raises(ValueError):
        degradation_scenario(device_id="d", start=0.0, interval_s=1.0, history_s=10.0, slope_c_per_day=0.0, noise_c=1.0)


def test_kinds_filter_and_unknown_kind() -> None:
    data = generate_dataset(seed=1, devices=3, duration_s=6 * 3600.0, kinds=["stuck_sensor"], faults_per_device_day=8)
    assert data.truth and {f.kind for f in data.truth} == {"stuck_sensor"}
    with pytest.raises(ValueError, match="unknown fault kind"):
        generate_dataset(kinds=["meteor_strike"])


def test_fault_json_round_trip() -> None:
    fault = Fault("sensor_1", "degradation", 10.5, 99.25, failure_at=120.0, params={"rise_c": 45.0})
    assert Fault.from_json(fault.to_json()) == fault
    plain = Fault("sensor_2", "voltage_spike", 1.0, 1.0)
    assert Fault.from_json(plain.to_json()) == plain
