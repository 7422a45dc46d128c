"""`--phases`: the refit shift moves only the refits, the summary is the shifts' own figures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.eval_bench import skab_eval
from gridmon.detection.stream import state as S
from gridmon.detection.stream.device import score_batch
from gridmon.detection.stream.kernel import RECOMPUTE_EVERY
from gridmon.detection.stream.run import DEFAULT_PARAMS
from gridmon.evaluation import adapter
from gridmon.evaluation.phases import offsets, run_phases, summary_rows
from tests.test_eval_skab import _write


def _noise(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"device_id": "d", "ts": 1.7e9 + 10.0 * np.arange(n), "temperature": 50.0 + rng.normal(0.0, 1.0, n)}
    )


def test_offsets_spread_over_one_refit_period() -> None:
    assert offsets(1) == [0]
    assert offsets(4) == [0, 8, 16, 24]
    assert offsets(32) == list(range(32))
    with pytest.raises(ValueError, match="1 to 32"):
        offsets(0)
    with pytest.raises(ValueError, match="1 to 32"):
        offsets(33)


def test_refit_phase_outside_one_period_is_a_clear_error() -> None:
    for bad in (-1, int(RECOMPUTE_EVERY)):
        with pytest.raises(ValueError, match="refit phase must be 0 to 31"):
            adapter.use_refit_phase(bad)
    assert adapter._params["detector"] == DEFAULT_PARAMS


def test_the_shift_moves_every_refit_by_that_many_readings() -> None:
    frame = _noise(900)
    base, _ = score_batch(S.DeviceState.new(["temperature"]), frame)
    moved, _ = score_batch(S.DeviceState.new(["temperature"]), frame, params=replace(DEFAULT_PARAMS, refit_phase=5.0))
    fitted = base.cal[..., S.C_THR] > 0.0
    assert fitted.sum() >= 2  # scores that reached their first fit (the test means something)
    # same learning, so the counters since the last refit differ by the shift (modulo one period)
    assert np.array_equal(base.cal[..., S.C_COUNT], moved.cal[..., S.C_COUNT])
    since0 = base.cal[..., S.C_SINCE][fitted]
    since5 = moved.cal[..., S.C_SINCE][fitted]
    assert np.all((since0 - since5) % RECOMPUTE_EVERY == 5.0)
    # and the thresholds themselves were refitted at other readings: not the same values
    assert not np.array_equal(base.cal[..., S.C_THR], moved.cal[..., S.C_THR])


def test_run_phases_summarises_the_rows_of_each_shift_and_restores_shift_0() -> None:
    seen: list[float] = []

    def evaluate() -> dict[str, object]:
        phase = adapter._params["detector"].refit_phase
        seen.append(phase)
        return {"rows": {"null": {"f1": 0.0}, "gridmon": {"f1": phase / 100.0, "note": "x", "inner": {"n": phase}}}}

    report = run_phases(evaluate, 4)
    assert seen == [8.0, 16.0, 24.0, 0.0]  # shift 0 last: what an evaluation writes is shift 0's
    spread = report["refit_phases"]
    assert report["rows"]["gridmon"]["f1"] == 0.0  # the report is the one of shift 0
    assert spread["mean"]["f1"] == pytest.approx(0.12) and spread["min"]["f1"] == 0.0
    assert spread["max"]["inner"]["n"] == 24.0 and spread["mean"]["note"] == "x"
    assert adapter._params["detector"] == DEFAULT_PARAMS
    rows = summary_rows(report)
    assert list(rows) == ["null", "gridmon", "  mean of 4 shifts", "  min of 4 shifts", "  max of 4 shifts"]
    assert run_phases(evaluate, 1) == evaluate()  # one shift: the plain report


def test_shift_restored_when_an_evaluation_fails() -> None:
    def evaluate() -> dict[str, object]:
        if adapter._params["detector"].refit_phase:
            raise ValueError("broken file")
        return {"rows": {"gridmon": {"f1": 1.0}}}

    with pytest.raises(ValueError, match="broken file"):
        run_phases(evaluate, 2)
    assert adapter._params["detector"] == DEFAULT_PARAMS


def test_skab_command_with_two_shifts(tmp_path: Path) -> None:
    _write(tmp_path / "other" / "1.csv", 900, (600, 700), [600, 700], seed=4)
    once = CliRunner().invoke(skab_eval, ["--data", str(tmp_path), "--json", "--no-forest"])
    twice = CliRunner().invoke(skab_eval, ["--data", str(tmp_path), "--phases", "2", "--no-forest"])
    assert once.exit_code == 0 and twice.exit_code == 0, twice.output
    single = json.loads(once.output.strip().splitlines()[-1])
    report = json.loads(twice.output.strip().splitlines()[-1])
    spread = report["refit_phases"]
    assert spread["shifts"] == [0, 16] and report["rows"]["gridmon"] == single["rows"]["gridmon"]
    assert spread["rows"][0] == single["rows"]["gridmon"]
    for key in ("f1", "far_pct", "mar_pct", "changepoint_nab_standard"):
        values = [row[key] for row in spread["rows"]]
        assert spread["mean"][key] == pytest.approx(sum(values) / 2)
        assert spread["min"][key] == min(values) and spread["max"][key] == max(values)
    assert "mean of 2 shifts" in twice.output and "flag_everything" in twice.output
    bad = CliRunner().invoke(skab_eval, ["--data", str(tmp_path), "--phases", "0"])
    assert bad.exit_code == 2 and "--phases" in bad.output


def test_csv_scores_written_with_several_shifts_are_shift_0s(tmp_path: Path) -> None:
    from gridmon.cli.evaluate import eval_group
    from tests.test_eval_detection import _labelled_csv

    source = tmp_path / "run1.csv"
    _labelled_csv(source)
    base = ["--csv", str(source), "--time-col", "when", "--map", "temperature=temp", "--label-col", "fault"]
    base += ["--sep", ";", "--no-safety"]
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    first = CliRunner().invoke(eval_group, [*base, "--out", str(once)])
    second = CliRunner().invoke(eval_group, [*base, "--out", str(twice), "--phases", "4"])
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert once.read_text() == twice.read_text()
    # and another shift writes other scores, so the comparison above could fail
    other = tmp_path / "shift24.csv"
    adapter.use_refit_phase(24)
    try:
        assert CliRunner().invoke(eval_group, [*base, "--out", str(other)]).exit_code == 0
    finally:
        adapter.use_refit_phase(0)
    assert other.read_text() != once.read_text()
    report = json.loads(second.output.strip().splitlines()[-1])
    assert report["refit_phases"]["shifts"] == [0, 8, 16, 24] and "mean of 4 shifts" in second.output
