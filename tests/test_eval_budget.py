"""`--budget`: the evaluations score with the alarm budget they are given, the deployment's by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gridmon.cli.eval_bench import noise_eval, skab_eval
from gridmon.config import get_settings
from gridmon.detection.stream.run import DEFAULT_PARAMS
from gridmon.evaluation import adapter
from tests.test_eval_skab import _write

NOISE = ["--devices", "4", "--days", "2", "--json"]


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _noise(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(noise_eval, [*NOISE, *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return report


def test_the_budget_is_set_inside_the_block_and_restored_after_it() -> None:
    adapter.use_refit_phase(8)
    try:
        with adapter.alarm_budget(0.2):
            params = adapter.detector_params()
            assert params.alarms_per_day == 0.2 and params.refit_phase == 8.0
        assert adapter.detector_params() == replace(DEFAULT_PARAMS, refit_phase=8.0)
    finally:
        adapter.use_refit_phase(0)
    with pytest.raises(RuntimeError), adapter.alarm_budget(0.2):
        raise RuntimeError("an evaluation failed")
    assert adapter.detector_params() == DEFAULT_PARAMS
    for bad in (0.0, -1.0, 11.0):
        with pytest.raises(ValueError, match="alarm budget must be above 0"), adapter.alarm_budget(bad):
            pass
    assert adapter.detector_params() == DEFAULT_PARAMS


def test_a_larger_budget_pages_more_on_the_same_noise(fresh_settings: None) -> None:
    loose, strict = _noise("--budget", "10"), _noise("--budget", "0.01")
    assert loose["budget_per_device_day"] == 10.0 and strict["budget_per_device_day"] == 0.01
    for kind in ("gaussian", "laplace", "quantised"):
        assert loose["rows"][kind]["onsets"] > strict["rows"][kind]["onsets"], kind
    # the trivial rows page the same (only their ratio to the budget differs), and nothing outlives the command
    for key in ("onsets", "time_in_alarm_pct"):
        assert loose["rows"]["flag_everything"][key] == strict["rows"]["flag_everything"][key] > 0
    assert loose["rows"]["flag_everything"]["times_budget"] < strict["rows"]["flag_everything"]["times_budget"]
    assert adapter.detector_params() == DEFAULT_PARAMS


def test_without_the_option_the_deployment_setting_is_used(
    fresh_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDMON_ALARMS_PER_DEVICE_DAY", "10")
    assert _noise() == _noise("--budget", "10")
    monkeypatch.delenv("GRIDMON_ALARMS_PER_DEVICE_DAY")
    get_settings.cache_clear()
    assert _noise()["budget_per_device_day"] == DEFAULT_PARAMS.alarms_per_day == 0.05


def test_a_budget_out_of_range_is_a_usage_error() -> None:
    for bad in ("0", "-0.1", "11", "many"):
        result = CliRunner().invoke(noise_eval, [*NOISE, "--budget", bad])
        assert result.exit_code == 2 and "--budget" in result.output, result.output


def test_the_tables_and_the_json_say_which_budget_scored(tmp_path: Path, fresh_settings: None) -> None:
    _write(tmp_path / "other" / "1.csv", 900, (600, 700), [600, 700], seed=4)
    result = CliRunner().invoke(skab_eval, ["--data", str(tmp_path), "--no-forest", "--budget", "0.1"])
    assert result.exit_code == 0, result.output
    assert "alarm budget: 0.1 false alarms per device-day" in result.output
    assert json.loads(result.output.strip().splitlines()[-1])["alarms_per_device_day"] == 0.1
    default = CliRunner().invoke(skab_eval, ["--data", str(tmp_path), "--no-forest", "--json"])
    assert json.loads(default.output.strip().splitlines()[-1])["alarms_per_device_day"] == 0.05


def test_the_forest_is_trained_with_the_budget_it_is_scored_with() -> None:
    # The training replay decides which rows are normal with the scoring parameters, as the
    # retrain replays with the scan's: one forest per budget, not the first one cached.
    rng = np.random.default_rng(3)
    common = rng.normal(size=600)
    train = pd.DataFrame(
        {"ts": 1_767_225_600.0 + 10.0 * np.arange(600), "a": common + rng.normal(size=600), "b": common}
    )
    default = adapter._forest(train)
    with adapter.alarm_budget(0.2):
        other = adapter._forest(train)
        assert adapter._forest(train) is other
    assert default is not None and other is not None and other is not default
    assert adapter._forest(train) is default
