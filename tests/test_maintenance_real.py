"""`gridmon eval maintenance --csv`: a real-looking series replayed day by day, with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.eval_maintenance import maintenance_eval
from gridmon.evaluation.maintenance_real import replay

T0 = 1_767_225_600.0  # a midnight, UTC


def _hourly(days: int, slope_c_per_day: float = 0.0) -> pd.DataFrame:
    hours = np.arange(days * 24)
    ts = T0 + hours * 3600.0
    temp = 30.0 + 5.0 * np.sin(2 * np.pi * hours / 24) + slope_c_per_day * hours / 24
    return pd.DataFrame({"ts": ts, "temperature": temp})


def test_a_pure_daily_cycle() -> None:
    result = replay(_hourly(40), limit_c=65.0)
    # cuts at every midnight with a day behind and 30 days ahead: days 1..9
    assert result["cuts"] == 9 and result["cuts_with_trend"] == 9
    assert result["dated_30d_pct"] == 0.0 and result["false_dates_30d_pct"] == 0.0
    assert result["reaches_limit"] is False
    # same hour yesterday is exactly right on a pure cycle, and so is the prediction's path (the
    # recent level plus the fitted daily cycle); the last reading (30 °C at midnight) misses by
    # the cycle: mean |5 sin| over the next 24 hours
    cycle = float(np.mean(np.abs(5.0 * np.sin(2 * np.pi * np.arange(1, 25) / 24))))
    for horizon in ("24h", "7d"):
        mae = result["mae_c"][horizon]
        assert mae["seasonal_naive"] == pytest.approx(0.0, abs=1e-9)
        assert mae["persistence"] == pytest.approx(cycle)
        assert mae["gridmon"] == pytest.approx(0.0, abs=0.05)


def test_a_rise_that_reaches_the_limit_is_not_a_false_date() -> None:
    # 1 °C/day from 30 °C: the trend reaches 60 °C on day 30
    result = replay(_hourly(70, slope_c_per_day=1.0), limit_c=60.0)
    assert result["reaches_limit"] is True and result["cuts"] == 39
    assert result["dated_30d_pct"] > 50.0
    assert result["false_dates_30d_pct"] == 0.0 and result["false_dates_7d_pct"] == 0.0


def test_command_replays_a_csv(tmp_path: Path) -> None:
    frame = _hourly(40)
    csv = tmp_path / "ett.csv"
    pd.DataFrame(
        {
            "date": pd.to_datetime(frame["ts"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
            "OT": frame["temperature"],
            "HUFL": 5.0,
        }
    ).to_csv(csv, index=False)
    args = ["--csv", str(csv), "--time-col", "date", "--map", "temperature=OT,current=HUFL", "--limit", "65"]
    result = CliRunner().invoke(maintenance_eval, args)
    assert result.exit_code == 0, result.output
    assert "seasonal naive" in result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["cuts"] == 9 and report["false_dates_7d_pct"] == 0.0
    bad = CliRunner().invoke(maintenance_eval, [*args[:4], "--map", "current=HUFL", "--limit", "65"])
    assert bad.exit_code == 2 and "temperature" in bad.output
