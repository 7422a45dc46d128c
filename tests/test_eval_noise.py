"""`gridmon eval noise`: false pages of new devices on fault-free noise, with the trivial rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from gridmon.cli.eval_bench import noise_eval
from gridmon.evaluation.noise import KINDS, NoiseSetup, _series, evaluate_noise


def test_rows_add_up_and_the_trivial_rows_are_exact() -> None:
    # 3 devices × 2 days at one reading a minute: day 1 and after it are one device-day each
    setup = NoiseSetup(devices=3, days=2.0, interval_s=60.0, seed=1)
    report = evaluate_noise(setup)
    rows = report["rows"]
    assert set(rows) == {*KINDS, "null", "flag_everything"}
    for name, row in rows.items():
        assert row["device_days"] == pytest.approx(6.0), name
        assert row["onsets_per_device_day"] * 6.0 == pytest.approx(row["onsets"]), name
        # the whole span is day 1 plus the rest, each 3 device-days
        assert row["first_day"] * 3.0 + row["later"] * 3.0 == pytest.approx(row["onsets"]), name
        assert row["times_budget"] == pytest.approx(row["onsets_per_device_day"] / 0.05), name
    assert rows["null"]["onsets"] == 0 and rows["null"]["time_in_alarm_pct"] == 0.0
    everything = rows["flag_everything"]
    assert (everything["onsets"], everything["first_day"], everything["later"]) == (3, 1.0, 0.0)
    assert everything["time_in_alarm_pct"] == 100.0
    # the detector on plain Gaussian noise: in alarm a tiny share of the time at most
    assert rows["gaussian"]["time_in_alarm_pct"] < 1.0
    assert evaluate_noise(setup) == report  # fixed seed: the same figures


def test_devices_of_several_metrics_report_them_all() -> None:
    # two devices of three independent metrics at one reading a minute for two days
    setup = NoiseSetup(devices=2, days=2.0, interval_s=60.0, seed=2, metrics=3)
    report = evaluate_noise(setup)
    assert report["setup"]["metrics"] == 3
    rows = report["rows"]
    for name, row in rows.items():
        assert row["device_days"] == pytest.approx(4.0), name
    assert rows["flag_everything"]["onsets"] == 2 and rows["null"]["onsets"] == 0
    assert rows["gaussian"]["time_in_alarm_pct"] < 1.0
    # each device's metrics are named and drawn independently
    frame = _series([np.zeros(3), np.ones(3), np.full(3, 2.0)], 60.0)
    assert list(frame.columns) == ["ts", "temperature", "metric2", "metric3"]
    assert frame["metric3"].iloc[0] - frame["temperature"].iloc[0] == 2.0


def test_less_than_a_day_has_no_later_rate() -> None:
    report = evaluate_noise(NoiseSetup(devices=1, days=0.25, interval_s=60.0))
    assert report["rows"]["null"]["later"] is None
    assert report["rows"]["flag_everything"]["first_day"] == pytest.approx(4.0)  # 1 onset in 0.25 days


def test_command_prints_the_table_budget_and_json_last() -> None:
    args = ["--devices", "1", "--days", "0.5", "--interval", "60"]
    result = CliRunner().invoke(noise_eval, args)
    assert result.exit_code == 0, result.output
    assert "flag_everything" in result.output and "budget: 0.05 onsets per device-day" in result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["setup"] == {"devices": 1, "metrics": 1, "days": 0.5, "interval_s": 60.0, "seed": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "0"], "devices must be at least 1"),
        (["--metrics", "0"], "metrics must be at least 1"),
        (["--interval", "0"], "interval must be positive"),
        (["--days", "0.0001", "--interval", "60"], "fewer than 2 readings"),
    ],
)
def test_bad_setups_are_clear_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(noise_eval, args)
    assert result.exit_code == 2 and message in result.output
