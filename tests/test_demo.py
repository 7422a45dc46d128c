"""The demo fleet: its identity is fixed per data directory (only noise and faults change from run
to run), its devices have profiles, its history continues into the live simulator, and its one
degradation is slow enough to be dated days before the failure."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from gridmon.cli.simulate import register
from gridmon.config import get_settings
from gridmon.domain.maintenance import DeviceProfile
from gridmon.domain.units import DAY_S
from gridmon.maintenance.predict import predict_from_readings
from gridmon.simulator.demo import (
    DEGRADATION_AFTER_S,
    demo_degradation,
    demo_devices,
    demo_history,
    fleet_profiles,
)
from gridmon.simulator.fleet import Fleet
from gridmon.simulator.identity import FleetIdentity, ensure_identity, fleet_file, load_identity

NOW = 1_790_000_000.0


def simulate(monkeypatch: pytest.MonkeyPatch, data_dir: Path, *args: str) -> dict:
    """`gridmon simulate --dry-run` with `data_dir`; its JSON summary."""
    monkeypatch.setenv("GRIDMON_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    group = click.Group()
    register(group)
    command = ["simulate", "--dry-run", "--count", "30", "--rate", "5000", "--json", *args]
    result = CliRunner().invoke(group, command, catch_exceptions=False)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stderr.strip().splitlines()[-1]))


def test_the_fleet_is_the_same_on_every_run_with_one_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = simulate(monkeypatch, tmp_path / "a")
    again = simulate(monkeypatch, tmp_path / "a")
    other = simulate(monkeypatch, tmp_path / "b")
    assert first["fleet_seed"] == again["fleet_seed"] != other["fleet_seed"]
    assert first["seed"] != again["seed"]  # the noise and the faults go on
    identity = load_identity(fleet_file(tmp_path / "a"))
    assert identity is not None and identity.seed == first["fleet_seed"]
    assert simulate(monkeypatch, tmp_path / "a", "--seed", "5")["fleet_seed"] == 5  # a seed reproduces a whole run
    assert simulate(monkeypatch, tmp_path / "a", "--seed", "5", "--demo")["fleet_seed"] == first["fleet_seed"]


def test_two_runs_of_one_fleet_share_levels_not_noise() -> None:
    a, b = Fleet(devices=4, seed=1, fleet_seed=7), Fleet(devices=4, seed=2, fleet_seed=7)
    assert a.profiles == b.profiles
    assert a.profiles != Fleet(devices=4, seed=1, fleet_seed=8).profiles
    assert [a.reading(0, NOW + k) for k in range(5)] != [b.reading(0, NOW + k) for k in range(5)]
    assert Fleet(devices=4, seed=3).profiles == Fleet(devices=4, seed=9, fleet_seed=3).profiles  # default: seed


def test_identity_is_created_once(tmp_path: Path) -> None:
    path = fleet_file(tmp_path)
    created = ensure_identity(path, NOW)
    assert ensure_identity(path, NOW + 99, seed=1) == created
    assert load_identity(path) == created
    path.write_text("not json")
    with pytest.raises(ValueError, match="fleet identity"):
        load_identity(path)


def test_devices_have_kinds_locations_and_ratings() -> None:
    identity = FleetIdentity(seed=11, created_at=NOW)
    devices = demo_devices(identity, 10)
    assert devices == demo_devices(identity, 10)
    assert demo_devices(identity, 12)[:10] == devices  # device k does not depend on the fleet size
    assert {d.kind for d in devices} == {"transformer", "feeder", "meter"}
    assert len({d.location for d in devices}) == 10
    assert all(d.temperature_limit == 70.0 for d in devices if d.kind == "transformer")
    assert all(d.temperature_limit is None for d in devices if d.kind != "transformer")


def test_history_continues_into_the_live_fleet_and_dates_the_degradation() -> None:
    identity = FleetIdentity(seed=11, created_at=NOW)
    profiles = fleet_profiles(identity, 6)
    degradation = demo_degradation(identity, profiles)
    assert degradation is not None and degradation.device_id == "sensor_4"
    assert degradation.failure_at == NOW + DEGRADATION_AFTER_S
    assert 4.0 < degradation.slope_c_per_day < 10.0  # days, not minutes

    frame, truth = demo_history(
        profiles, start=NOW - 3 * DAY_S, end=NOW, interval_s=20.0, seed=3, degradation=degradation
    )
    assert frame["ts"].is_monotonic_increasing and set(frame["device_id"]) == {p.device_id for p in profiles}
    assert {f.kind for f in truth} <= {"voltage_spike", "voltage_sag", "current_surge", "overheating", "stuck_sensor"}
    assert len(truth) >= 12  # about one fault per device and day

    # The live simulator takes over where the history ends: same level, same trend.
    fleet = Fleet(devices=6, seed=99, fleet_seed=identity.seed, anomaly_rate=0.0, degradation=degradation)
    assert fleet.profiles == profiles
    live = np.array([fleet.reading(4, NOW + k * 2.0).temperature for k in range(900)])
    last_hour = frame[(frame["device_id"] == "sensor_4") & (frame["ts"] > NOW - 3600)]["temperature"]
    assert abs(live.mean() - last_hour.mean()) < 1.5

    # With the history alone, the maintenance outlook dates the failure days ahead, near the truth.
    device = frame[frame["device_id"] == "sensor_4"]
    prediction = predict_from_readings(device, DeviceProfile("sensor_4", temperature_limit=70.0), as_of=NOW)
    assert prediction.predicted_failure_date is not None
    assert prediction.risk_level in ("high", "critical")
    assert abs(prediction.predicted_failure_date.timestamp() - degradation.failure_at) < 0.5 * DAY_S
