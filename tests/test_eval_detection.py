"""`gridmon eval`: alarm scoring rules, a small catalogue run, a labelled CSV run, registration."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.evaluate import eval_group, register
from gridmon.config import get_settings
from gridmon.evaluation.catalogue import CatalogueSetup, evaluate_catalogue, generate
from gridmon.evaluation.scoring import (
    Alarm,
    TruthEvent,
    alarms_from_flags,
    event_scores,
    label_segments,
    pointwise_counts,
    pointwise_scores,
)


def test_alarms_are_episodes_of_flagged_readings() -> None:
    ts = np.arange(0.0, 100.0, 10.0)  # a reading every 10 s
    flags = np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 1], dtype=bool)
    # gap 30 s: 10–20 is one alarm; 60 and 90 are 30 s apart → one alarm 60–90
    alarms = alarms_from_flags("d", ts, flags, gap_s=30.0)
    assert [(a.start, a.end, a.hold_s) for a in alarms] == [(10.0, 20.0, 10.0), (60.0, 90.0, 10.0)]
    assert alarms_from_flags("d", ts, flags, gap_s=20.0)[-1].start == 90.0


def test_false_alerts_count_on_every_device_and_alarm_time_outside_windows() -> None:
    truth = [TruthEvent("a", 100.0, 200.0), TruthEvent("a", 1000.0, 1010.0), TruthEvent("b", 100.0, 200.0)]
    alarms = [
        Alarm("a", 110.0, 590.0, 10.0),  # detects the first event 10 s late, then stays on 370 s past it
        Alarm("a", 5000.0, 5030.0, 10.0),  # faulty device, nothing there: a false alert
        Alarm("c", 5000.0, 5030.0, 10.0),  # fault-free device: a false alert
    ]
    s = event_scores(alarms, truth, tolerance_s=30.0, device_days=3.0)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 3)
    assert s["median_delay_s"] == 10.0
    assert s["false_alerts_per_device_day"] == pytest.approx(2 / 3)
    # alarm time: 490 + 40 + 40 s; inside [70, 230] of device a: 110..230 = 120 s
    assert s["alarm_time_precision"] == pytest.approx(120 / 570)
    none = event_scores([], truth, tolerance_s=30.0, device_days=3.0)
    assert none["precision"] is None and none["f1"] == 0.0 and none["alarm_time_precision"] is None


def test_pointwise_is_the_skab_formula() -> None:
    counts = pointwise_counts(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 1], bool))
    assert counts == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert pointwise_scores(counts) == {"f1": 2 / (2 + 1), "far": 0.5, "mar": 1 / 3}
    events = label_segments("d", np.arange(6.0), np.array([0, 1, 1, 0, 1, 0]))
    assert [(e.start, e.end) for e in events] == [(1.0, 2.0), (4.0, 4.0)]


SMALL = CatalogueSetup(
    devices=2,
    fault_free_devices=1,
    duration_s=2 * 3600.0,
    history_days=0.25,
    interval_s=10.0,
    faults_per_device_day=24.0,
    per_kind=False,
)


def test_faults_fall_in_the_scored_span_only() -> None:
    data, scored_from = generate(SMALL, None)
    assert data.truth and min(f.start for f in data.truth) >= scored_from
    assert len(data.truth) == 4  # 24 per device-day × 2 h × 2 faulty devices


def test_small_catalogue_rows() -> None:
    report = evaluate_catalogue(SMALL)
    rows = report["rows"]
    assert set(rows) == {"gridmon", "null", "flag_everything", "original_design"}
    assert rows["null"]["recall"] == 0.0 and rows["null"]["alarms"] == 0 and rows["null"]["f1"] == 0.0
    every = rows["flag_everything"]
    # one alarm per device over the whole scored span: the two faulty devices' alarms overlap
    # a fault, the fault-free one's does not → precision 2/3, one false alert in 3 × 1/12 days
    assert every["alarms"] == 3 and every["precision"] == pytest.approx(2 / 3)
    assert every["false_alerts_per_device_day"] == pytest.approx(1 / (3 * 2 / 24))
    assert every["alarm_time_precision"] < 0.5 and every["recall"] == 1.0
    ours = rows["gridmon"]
    assert ours["events"] == 4 and 0.0 <= ours["recall"] <= 1.0
    assert report["setup"]["history_readings"] > report["setup"]["scored_readings"]


def test_catalogue_command_uses_the_production_episode_gap() -> None:
    args = ["--json", "--devices", "2", "--fault-free", "1", "--hours", "2", "--history-days", "0.25"]
    args += ["--interval", "10", "--faults-per-day", "24", "--no-per-kind"]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["setup"]["episode_gap_s"] == get_settings().episode_gap_s
    assert set(report["rows"]["gridmon"]) >= {"false_alerts_per_device_day", "alarm_time_precision", "median_delay_s"}


def _labelled_csv(path: Path, n: int = 1500) -> None:
    rng = np.random.default_rng(3)
    temp = 40.0 + rng.normal(0, 0.5, n)
    label = np.zeros(n, dtype=int)
    label[1000:1100] = 1
    temp[1000:1100] += 6.0
    times = pd.date_range("2024-01-01", periods=n, freq="s").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"when": times, "temp": temp, "fault": label}).to_csv(path, sep=";", index=False)


def test_csv_eval_temperature_only_with_scores_out(tmp_path: Path) -> None:
    source = tmp_path / "pump" / "run1.csv"
    source.parent.mkdir()
    _labelled_csv(source)
    out = tmp_path / "scores.csv"
    args = ["--csv", str(source), "--time-col", "when", "--map", "temperature=temp", "--label-col", "fault"]
    args += ["--sep", ";", "--train-rows", "400", "--out", str(out)]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    ours = report["rows"]["gridmon"]
    assert ours["events"]["recall"] == 1.0 and ours["pointwise"]["far"] < 0.05
    assert report["rows"]["flag_everything"]["pointwise"]["far"] == 1.0
    assert report["rows"]["null"]["pointwise"]["tp"] == 0
    written = pd.read_csv(out)
    assert list(written.columns) == ["timestamp", "score", "flag"] and len(written) == 1500
    assert written["flag"].iloc[:400].isna().all()  # training rows are not scored
    assert written["flag"].iloc[1005:1095].mean() > 0.9


def test_csv_eval_reports_a_missing_column(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    _labelled_csv(source, n=50)
    args = ["--csv", str(source), "--time-col", "when", "--map", "voltage=volts", "--label-col", "fault", "--sep", ";"]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 2 and "volts" in result.output


def test_register_mounts_eval_and_its_commands() -> None:
    group = click.Group("gridmon")
    register(group)
    assert group.commands["eval"] is eval_group
    assert {"nab", "skab", "maintenance"} <= set(eval_group.commands)
