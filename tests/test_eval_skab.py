"""SKAB protocol: point-wise and changepoint scores by hand on a toy file, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.eval_bench import skab_eval
from gridmon.evaluation.adapter import Verdict
from gridmon.evaluation.skab import SkabFile, evaluate_skab, load_skab, score_rows, where_it_errs

CHANNELS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)


def _write(path: Path, n: int, anomaly: tuple[int, int], changepoints: list[int], *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-03-09 10:00:00", periods=n, freq="s").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"datetime": times})
    for k, name in enumerate(CHANNELS):
        frame[name] = 10.0 * (k + 1) + rng.normal(0.0, 0.1, n)
    label = np.zeros(n)
    label[anomaly[0] : anomaly[1]] = 1.0
    cp = np.zeros(n)
    cp[changepoints] = 1.0
    frame["anomaly"], frame["changepoint"] = label, cp
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep=";", index=False)


def test_toy_file_by_hand(tmp_path: Path) -> None:
    # 20 rows, one a second; the first 4 train. Anomaly rows 10–14, changepoints at 10 and 15.
    # 60-s windows: [10, 19] reaches into the next one and ends before it → [10, 14], [15, 19].
    _write(tmp_path / "valve1" / "0.csv", 20, (10, 15), [10, 15])
    (tmp_path / "anomaly-free").mkdir()
    pd.DataFrame({"datetime": ["2020-03-09 10:00:00"], "Current": [1.0]}).to_csv(
        tmp_path / "anomaly-free" / "anomaly-free.csv", sep=";", index=False
    )
    files = load_skab(tmp_path, train_rows=4)
    assert [f.name for f in files] == ["valve1/0"]  # no anomaly column: not scored
    assert files[0].cp_windows == [(10, 14), (15, 19)]
    assert {"voltage", "current", "temperature", "Pressure"} <= set(files[0].frame.columns)

    flags = np.zeros(20, dtype=bool)
    flags[[8, 9, 10, 11, 12, 17]] = True
    row = score_rows(files, [Verdict(flags, flags.astype(float))], train_rows=4)
    # rows 4..19: TP 10,11,12 = 3; FP 8,9,17 = 3; FN 13,14 = 2; TN 8
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (3, 3, 2, 8)
    assert row["f1"] == pytest.approx(3 / (3 + 5 / 2))  # 0.5455
    assert row["far_pct"] == pytest.approx(100 * 3 / 11) and row["mar_pct"] == pytest.approx(40.0)
    # changes (on or off) at 8, 13, 17, 18:
    #   8 before any window → −0.11;  13 first in [10, 14]: y = −2/5 → tanh(1) = 0.761594
    #   17 first in [15, 19]: y = −3/5 → tanh(1.5) = 0.905148;  18 second in it → nothing
    # S = 1.556742; S_null = −2, S_perfect = 2·tanh(2.5) = 1.973229 → 100·3.556742/3.973229 = 89.518
    assert row["changepoint_nab_standard"] == pytest.approx(89.518, abs=1e-3)
    assert row["detected_changepoints"] == 4
    # false rows 8, 9 come before the labelled rows 10–14, row 17 after them; the first window
    # lies in the fault with an alarm standing at row 9, the second marks the fault's end
    where = where_it_errs(files[0], Verdict(flags, flags.astype(float)), train_rows=4)
    assert (where["fp_before_fault"], where["fp_after_fault"]) == (2, 1)
    assert where["window_changes"] == [
        {"start": 10, "end": 14, "in_fault": True, "alarm_before": True, "change": 13},
        {"start": 15, "end": 19, "in_fault": False, "alarm_before": False, "change": 17},
    ]
    assert (row["fp_before_fault"], row["fp_after_fault"]) == (2, 1)
    assert row["cp_missed_in_fault_alarm_standing"] == row["cp_missed_end_alarm_off"] == 0
    quiet = where_it_errs(files[0], Verdict(np.zeros(20, dtype=bool), np.zeros(20)), train_rows=4)
    assert quiet["fp_before_fault"] == quiet["fp_after_fault"] == 0
    assert [w["change"] for w in quiet["window_changes"]] == [None, None]
    # an alarm from row 6 to the end: the fault's window is missed under it, its end too
    standing = np.zeros(20, dtype=bool)
    standing[6:] = True
    missed = score_rows(files, [Verdict(standing, standing.astype(float))], train_rows=4)
    assert (missed["fp_before_fault"], missed["fp_after_fault"]) == (4, 5)
    assert missed["cp_missed_in_fault_alarm_standing"] == missed["cp_missed_end_alarm_on"] == 1
    nothing = score_rows(files, [Verdict(np.zeros(20, dtype=bool), np.zeros(20))], train_rows=4)
    assert nothing["cp_missed_in_fault_no_alarm"] == nothing["cp_missed_end_alarm_off"] == 1

    everything = np.zeros(20, dtype=bool)
    everything[4:] = True
    trivial = score_rows(files, [Verdict(everything, everything.astype(float))], train_rows=4)
    assert trivial["f1"] == pytest.approx(5 / (5 + 11 / 2)) and trivial["far_pct"] == 100.0
    # one change, at row 4, before both windows: −0.11 − 2 → 100·(−0.11)/3.973229 = −2.769
    assert trivial["changepoint_nab_standard"] == pytest.approx(-2.769, abs=1e-3)


def test_command_prints_trivial_rows_anchors_and_json_last(tmp_path: Path) -> None:
    _write(tmp_path / "other" / "1.csv", 700, (500, 560), [500, 560], seed=1)
    result = CliRunner().invoke(skab_eval, ["--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Conv-AE 0.78 / 13.55 / 28.02" in result.output and "MSCRED 32.4" in result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    rows = report["rows"]
    assert rows["null"]["f1"] == 0.0 and rows["null"]["changepoint_nab_standard"] == 0.0
    assert rows["flag_everything"]["far_pct"] == 100.0
    assert rows["flag_everything"]["f1"] == pytest.approx(60 / (60 + 240 / 2))
    assert 0.0 <= rows["gridmon"]["f1"] <= 1.0 and report["corpus"]["files"] == 1
    (item,) = report["files"]
    assert item["fp_before_fault"] + item["fp_after_fault"] == item["fp"]  # one fault: no false row inside it
    assert [(w["start"], w["in_fault"]) for w in item["window_changes"]] == [(500, True), (560, False)]


def test_files_without_labels_only_are_an_error(tmp_path: Path) -> None:
    pd.DataFrame({"datetime": ["2020-03-09 10:00:00"], "Current": [1.0]}).to_csv(tmp_path / "x.csv", sep=";")
    result = CliRunner().invoke(skab_eval, ["--data", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "no labelled" in result.output


def test_gridmon_row_uses_the_adapter_with_training_rows(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "0.csv", 600, (450, 500), [450, 500], seed=2)
    seen: list[int] = []

    def spy(item: SkabFile, train_rows: int) -> Verdict:
        seen.append(train_rows)
        return Verdict(np.zeros(len(item.frame), dtype=bool), np.zeros(len(item.frame)))

    report = evaluate_skab(tmp_path, detector=spy)
    assert seen == [400] and report["rows"]["gridmon"]["f1"] == 0.0
