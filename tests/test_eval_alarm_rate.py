"""Alarm rate on unlabelled series: onsets per device-day and time in alarm, by hand and by command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.evaluate import eval_group
from gridmon.evaluation.adapter import Verdict
from gridmon.evaluation.alarm_rate import rate_row, watched_days
from gridmon.evaluation.csv_files import CsvFile

T0 = 1_767_225_600.0


def test_toy_series_by_hand() -> None:
    # three days of hourly readings; the first 24 train, 48 are watched
    ts = T0 + np.arange(72) * 3600.0
    data = CsvFile("d", pd.DataFrame({"device_id": "d", "ts": ts, "temperature": 30.0}), None)
    flags = np.zeros(72, dtype=bool)
    flags[[20, 30, 31, 40]] = True  # row 20 is a training row: never counted
    flags[60:] = True
    row = rate_row([data], [Verdict(flags, flags.astype(float))], train_rows=24)
    # onsets at 30, 40, 60; watched from ts[24] to ts[71] plus one interval = 48 h = 2 days
    assert watched_days(ts[24:]) == pytest.approx(2.0)
    assert row["onsets"] == 3 and row["onsets_per_device_day"] == pytest.approx(1.5)
    # flagged watched readings: 30, 31, 40 and 60..71 = 15 of 48
    assert row["time_in_alarm_pct"] == pytest.approx(100 * 15 / 48)


def test_command_without_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 24 * 20
    times = pd.date_range("2017-01-01", periods=n, freq="h")
    hours = np.arange(n)
    frame = pd.DataFrame(
        {
            "date": times.strftime("%Y-%m-%d %H:%M:%S"),
            "OT": 30 + 5 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, n),
            "LOAD": 8 + 2 * np.sin(2 * np.pi * (hours - 3) / 24) + rng.normal(0, 0.2, n),
        }
    )
    path = tmp_path / "transformer.csv"
    frame.to_csv(path, index=False)
    args = ["--csv", str(path), "--time-col", "date", "--map", "temperature=OT,load=LOAD", "--no-label"]
    result = CliRunner().invoke(eval_group, [*args, "--no-safety", "--train-rows", "96"])
    assert result.exit_code == 0, result.output
    assert "ISA-18.2" in result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    rows = report["rows"]
    days = (n - 96) / 24
    assert rows["null"] == {**rows["null"], "onsets": 0, "time_in_alarm_pct": 0.0}
    assert rows["flag_everything"]["onsets_per_device_day"] == pytest.approx(1 / days)
    assert rows["flag_everything"]["time_in_alarm_pct"] == 100.0
    assert rows["gridmon"]["device_days"] == pytest.approx(days)
    assert 0.0 <= rows["gridmon"]["time_in_alarm_pct"] <= 100.0
    assert report["isa_18_2_onsets_per_device_day"] == 0.1
