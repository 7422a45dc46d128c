"""NAB scoring: the method by hand on a tiny corpus, and `gridmon eval nab` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.eval_bench import nab_eval
from gridmon.evaluation.adapter import Verdict
from gridmon.evaluation.nab import NabFile, evaluate_nab
from gridmon.evaluation.nab_score import (
    PROFILES,
    disjoint,
    normalized,
    onsets,
    probation_rows,
    score_file,
    sigma,
    window_rows,
)

START = pd.Timestamp("2020-01-01 00:00:00")


def test_sigma_and_probation() -> None:
    # σ(y) = 2/(1+e^{5y}) − 1 = tanh(−5y/2): σ(−1) = tanh(2.5), σ(0) = 0, −1 beyond y = 3.
    assert sigma(-1.0) == pytest.approx(math.tanh(2.5))
    assert sigma(0.0) == pytest.approx(0.0)
    assert sigma(3.0) == pytest.approx(-math.tanh(7.5)) and sigma(3.01) == -1.0
    assert probation_rows(20) == 3 and probation_rows(100_000) == 750


def test_windows_map_to_rows_and_never_overlap() -> None:
    ts = np.arange(10.0) * 60.0
    # first row with ts ≥ start, last row with ts ≤ end; a window holding no row is dropped
    assert window_rows(ts, [(90.0, 250.0), (500.0, 510.0)]) == [(2, 4)]
    assert disjoint([(5, 9), (0, 6), (8, 8)]) == [(0, 4), (5, 7), (8, 8)]


def test_onsets_ignore_probation() -> None:
    flags = np.array([1, 1, 0, 1, 1, 0, 1], dtype=bool)
    assert onsets(flags, 0).tolist() == [0, 3, 6]
    assert onsets(flags, 2).tolist() == [3, 6]
    # a stretch that runs over the end of probation starts at the first scored row
    assert onsets(flags, 4).tolist() == [4, 6]


def test_hand_worked_file_score() -> None:
    # 20 rows, windows rows 5–9 and 14–15; detections (onsets) at rows 7, 9 and 12.
    # row 7, first in [5, 9]: y = −(9 − 7 + 1)/(9 − 5 + 1) = −0.6 → σ = tanh(1.5) = 0.905148
    # row 9, second in the same window: counts nothing
    # row 12, after [5, 9]: y = (12 − 9)/(9 − 5) = 0.75 → σ = −tanh(1.875) = −0.954045
    # window [14, 15] missed
    windows = [(5, 9), (14, 15)]
    std = score_file([7, 9, 12], windows, PROFILES["standard"])
    # standard: 0.905148 + 0.11 · (−0.954045) − 1 = −0.199797
    assert std.raw == pytest.approx(-0.199797, abs=1e-6)
    assert (std.detections, std.windows_detected, std.false_onsets) == (3, 1, 1)
    assert std.first_onsets == (7, None) and std.false_rows == (12,)
    # reward_low_FN: 0.905148 − 0.104945 − 2 = −1.199797
    assert score_file([7, 9, 12], windows, PROFILES["reward_low_FN"]).raw == pytest.approx(-1.199797, abs=1e-6)
    # no window before a false detection: −A_FP
    assert score_file([2], windows, PROFILES["reward_low_FP"]).raw == pytest.approx(-0.22 - 2.0)
    # perfect (each window's first row) and null are the normalization's ends
    perfect = score_file([5, 14], windows, PROFILES["standard"]).raw
    assert normalized(perfect, 2, PROFILES["standard"]) == pytest.approx(100.0)
    assert normalized(score_file([], windows, PROFILES["standard"]).raw, 2, PROFILES["standard"]) == 0.0


def _write_corpus(root: Path) -> tuple[Path, Path]:
    data = root / "data"
    for name, n in (("a/f1.csv", 20), ("b/f2.csv", 10)):
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ts = START + pd.to_timedelta(np.arange(n) * 5, unit="min")
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": np.arange(n, dtype=float)}).to_csv(
            path, index=False
        )
    labels = root / "windows.json"
    # 00:23–00:47 holds rows 5..9 (00:25 … 00:45); 01:10–01:15 rows 14..15
    windows = {
        "a/f1.csv": [
            ["2020-01-01 00:23:00.000000", "2020-01-01 00:47:00.000000"],
            ["2020-01-01 01:10:00", "2020-01-01 01:15:00"],
        ],
        "b/f2.csv": [],
    }
    labels.write_text(json.dumps(windows))
    return data, labels


def _hand_detector(item: NabFile) -> Verdict:
    flags = np.zeros(len(item.ts), dtype=bool)
    if item.name == "a/f1.csv":
        flags[[2, 7, 9, 12]] = True  # row 2 is in probation (3 rows): ignored
    else:
        flags[5] = True  # no window in this file: −A_FP
    return Verdict(flags, flags.astype(float))


def test_hand_worked_corpus(tmp_path: Path) -> None:
    data, labels = _write_corpus(tmp_path)
    report = evaluate_nab(data, labels, detector=_hand_detector)
    # S (standard) = −0.199797 (f1, above) − 0.11 (f2) = −0.309797; W = 2 windows:
    # S_null = −2, S_perfect = 2·tanh(2.5) = 1.973229 → 100·(1.690203 / 3.973229) = 42.540
    ours = report["rows"]["gridmon"]
    assert ours["standard"] == pytest.approx(42.540, abs=1e-3)
    # reward_low_FP: −0.304742 − 0.22 = −0.524742 → 100·1.475258/3.973229 = 37.130
    assert ours["reward_low_FP"] == pytest.approx(37.130, abs=1e-3)
    # reward_low_FN: −1.199797 − 0.11 = −1.309797; S_null = −4 → 100·2.690203/5.973229 = 45.038
    assert ours["reward_low_FN"] == pytest.approx(45.038, abs=1e-3)
    assert (ours["detections"], ours["windows_detected"], ours["false_onsets"]) == (4, 1, 2)
    assert report["rows"]["null"]["standard"] == 0.0
    # flag-everything: one onset per file at its first scored row, before any window:
    # −0.11 − 2 (both windows missed) − 0.11 = −2.22 → 100·(−0.22)/3.973229 = −5.537
    assert report["rows"]["flag_everything"]["standard"] == pytest.approx(-5.537, abs=1e-3)
    files = {f["file"]: f for f in report["files"]}
    assert files["a/f1.csv"]["raw"]["standard"] == pytest.approx(-0.1998, abs=1e-4)
    assert files["a/f1.csv"]["probation"] == 3 and files["b/f2.csv"]["false_onsets"] == 1
    # where: row 7 found the first window, the second was missed, row 12 was a false onset
    assert files["a/f1.csv"]["window_onsets"] == [[5, 9, 7], [14, 15, None]]
    assert files["a/f1.csv"]["false_onset_rows"] == [12] and files["b/f2.csv"]["false_onset_rows"] == [5]
    assert report["anchors"]["ARTime"] == 76.4


def test_command_runs_the_detector_and_prints_json_last(tmp_path: Path) -> None:
    data, labels = tmp_path / "data", tmp_path / "windows.json"
    rng = np.random.default_rng(5)
    n = 1000
    ts = START + pd.to_timedelta(np.arange(n) * 5, unit="min")
    value = 10.0 + np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 0.1, n)
    value[700:760] += 8.0  # a blatant step inside the window
    (data / "synthetic").mkdir(parents=True)
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": value}).to_csv(
        data / "synthetic" / "step.csv", index=False
    )
    window = [str(ts[690]), str(ts[780])]
    labels.write_text(json.dumps({"synthetic/step.csv": [window]}))
    result = CliRunner().invoke(nab_eval, ["--data", str(data), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "standard" in lines[1] and "reward_low_FP" in lines[1]
    assert any(line.startswith("flag_everything") for line in lines) and "ARTime 76.4" in result.output
    report = json.loads(lines[-1])
    assert set(report["rows"]) == {"gridmon", "null", "flag_everything"}
    assert report["rows"]["gridmon"]["windows_detected"] == 1
    assert report["files"][0]["probation"] == 150


def test_missing_labels_are_an_error(tmp_path: Path) -> None:
    data, labels = _write_corpus(tmp_path)
    labels.write_text(json.dumps({"a/f1.csv": []}))
    result = CliRunner().invoke(nab_eval, ["--data", str(data), "--labels", str(labels), "--json"])
    assert result.exit_code == 2 and "b/f2.csv" in result.output
