"""`gridmon eval`: event matching, a small catalogue run, a CSV run, and registration."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
from click.testing import CliRunner

from gridmon.cli.evaluate import eval_group, register
from gridmon.detection.episodes import Episode
from gridmon.evaluation.scoring import TruthEvent, event_scores, label_segments, pointwise_counts, pointwise_scores
from gridmon.simulator.catalogue import FAULT_KINDS

SUMMARY_KEYS = {"precision", "recall", "f1", "false_alerts_per_device_day", "median_delay_s"}


def _episode(device: str, start: float, end: float) -> Episode:
    return Episode(device, "voltage", start, end, "high", 3, 240.0, "statistical", 5.0, "x")


def test_event_matching_rules() -> None:
    truth = [TruthEvent("a", 100.0, 200.0), TruthEvent("a", 1000.0, 1010.0), TruthEvent("b", 100.0, 200.0)]
    episodes = [
        _episode("a", 110.0, 150.0),  # detects the first event, 10 s late
        _episode("a", 205.0, 206.0),  # within tolerance after the end: same event, not a false alarm
        _episode("a", 5000.0, 5001.0),  # nothing there: false positive
        _episode("c", 5000.0, 5001.0),  # fault-free device: false alert
    ]
    s = event_scores(episodes, truth, tolerance_s=30.0, fault_free_devices=["c"], fault_free_days=2.0)
    assert s["precision"] == 0.5 and s["recall"] == 1 / 3
    assert s["median_delay_s"] == 10.0
    assert s["false_alerts_per_device_day"] == 0.5
    assert s["episodes_per_detected_event"] == 2.0


def test_pointwise_is_the_skab_formula() -> None:
    counts = pointwise_counts(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 1], bool))
    assert counts == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    s = pointwise_scores(counts)
    assert s == {"f1": 2 / (2 + 1), "far": 0.5, "mar": 1 / 3}
    events = label_segments("d", np.arange(6.0), np.array([0, 1, 1, 0, 1, 0]))
    assert [(e.start, e.end) for e in events] == [(1.0, 2.0), (4.0, 4.0)]


def test_small_catalogue_eval_prints_json_last() -> None:
    args = ["--json", "--devices", "3", "--fault-free", "1", "--hours", "3", "--faults-per-day", "16"]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert set(report["overall"]) >= SUMMARY_KEYS and set(report["baseline"]) >= SUMMARY_KEYS
    assert set(report["by_kind"]) == set(FAULT_KINDS)
    overall = report["overall"]
    for key in ("precision", "recall", "f1"):
        assert 0.0 <= overall[key] <= 1.0
    assert overall["events"] > 5 and overall["recall"] >= 0.8
    assert overall["false_alerts_per_device_day"] is not None and overall["false_alerts_per_device_day"] >= 0
    # contamination 0.1 flags a tenth of everything: the baseline cannot be more precise than us
    assert report["baseline"]["precision"] < overall["precision"]


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
    args += ["--sep", ";", "--train-rows", "400", "--out", str(out), "--json"]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert set(report) == {"pointwise", "events"}
    assert {"f1", "far", "mar"} <= set(report["pointwise"]) and {"precision", "recall", "f1"} <= set(report["events"])
    assert report["events"]["recall"] == 1.0 and report["pointwise"]["far"] < 0.05
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


def test_register_mounts_eval() -> None:
    group = click.Group("gridmon")
    register(group)
    assert group.commands["eval"] is eval_group
