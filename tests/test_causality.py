"""Causality of the detector under evaluation: a reading's verdict uses it and earlier ones only.

Each generated series is scored twice through the evaluation adapter (`detect_series`, the one
door every evaluation goes through, so this keeps testing whatever detector sits behind it):
once in one call, and row by row — for every scored row r, a call that sees rows 0..r only,
whose last flag is the verdict on r. Both must agree on every row.

The series carry what once made verdicts look ahead (each case failed on an earlier detector
before its fix): daily cycles, steps, a stuck stretch at the start (a baseline judged against
the spread of the whole data), a long freeze late in the data (whether a metric "moves" judged
on final run lengths) and a finer quantisation step late in the data (a scale floor from every
row). Each series first has `LEAD` normal readings: the streaming detector raises nothing
before its thresholds are calibrated, and a case where it could not fire would prove nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridmon.domain.units import DAY_S
from gridmon.evaluation.adapter import detect_series

T0 = 1_767_225_600.0
LEAD = 500


def _lead(frame: pd.DataFrame, step_s: float, seed: int) -> pd.DataFrame:
    """`LEAD` readings before `frame`, drawn like its own normal part (first 30 rows' spread)."""
    rng = np.random.default_rng(seed)
    head = frame.iloc[:30]
    ts = frame["ts"].iloc[0] - step_s * np.arange(LEAD, 0, -1)
    cols = {"ts": ts}
    for c in frame.columns:
        if c != "ts":
            cols[c] = np.round(head[c].median() + rng.normal(0.0, max(head[c].std(), 1e-3), LEAD), 3)
    return pd.concat([pd.DataFrame(cols), frame], ignore_index=True)


def _row_by_row(frame: pd.DataFrame, train_rows: int, safety: bool) -> np.ndarray:
    flags = np.zeros(len(frame), dtype=bool)
    for r in range(train_rows, len(frame)):
        flags[r] = detect_series(frame.iloc[: r + 1], train_rows, safety=safety).flags[r]
    return flags


def daily_cycle_with_step_and_stuck() -> pd.DataFrame:
    """Five-minute readings over 1.5 days: a daily cycle, a 2-h step of +12 σ, a stuck hour."""
    rng = np.random.default_rng(11)
    n = 432
    ts = T0 + np.arange(n) * 300.0
    value = 20.0 + 5.0 * np.sin(2 * np.pi * ts / DAY_S) + rng.normal(0.0, 0.5, n)
    value[320:344] += 6.0
    value[360:372] = value[359]
    value[400] += 8.0
    return pd.DataFrame({"ts": ts, "value": np.round(value, 3)})


def grid_device_with_faults() -> pd.DataFrame:
    """Ten-second readings of voltage, current, temperature on a fast cycle, with grid faults."""
    rng = np.random.default_rng(12)
    n = 600
    ts = T0 + np.arange(n) * 10.0
    cycle = np.sin(2 * np.pi * ts / 3600.0)
    volt = 230.0 + 2.0 * cycle + rng.normal(0.0, 1.0, n)
    cur = 4.0 + 0.5 * cycle + rng.normal(0.0, 0.2, n)
    temp = 35.0 + 2.0 * cycle + rng.normal(0.0, 0.3, n)
    temp[330:400] += 5.0  # a step
    volt[420:426] = 258.0  # beyond the safety limit
    for series in (volt, cur, temp):
        series[450:500] = series[449]  # the sensor freezes
    cur[540:570] += 2.5
    return pd.DataFrame(
        {"ts": ts, "voltage": np.round(volt, 2), "current": np.round(cur, 3), "temperature": np.round(temp, 2)}
    )


def stuck_start_and_late_freeze() -> pd.DataFrame:
    """No training rows; stuck from the first reading, stuck again briefly, then frozen for good.

    Whether a metric "moves" (so that a flat-line is news) must be judged on what is known at a
    reading: the final freeze makes long runs most of the data only late in the series.
    """
    rng = np.random.default_rng(13)
    n = 320
    ts = T0 + np.arange(n) * 10.0
    value = np.round(50.0 + rng.normal(0.0, 1.0, n), 3)
    value[:30] = 50.5  # stuck from the first reading
    value[100:125] = value[99]  # a stuck sensor
    value[140:150] += 8.0  # a step
    value[170:] = value[169]  # frozen for good
    return pd.DataFrame({"ts": ts, "value": value})


def quantised_with_a_finer_step_late() -> pd.DataFrame:
    """One reading a minute on a 1.0 grid; a step of 1.5 early; a 0.25 step only much later.

    A sensor's quantisation (the scale floor of a signal flat between bins) must be learnt from
    the steps seen so far, not from a finer step that comes later.
    """
    rng = np.random.default_rng(14)
    n = 220
    ts = T0 + np.arange(n) * 60.0
    value = 50.0 + (rng.random(n) < 0.1).astype(float)
    value[120:126] = 51.5
    value[190] = 50.25
    return pd.DataFrame({"ts": ts, "value": value})


def daily_cycle_three_days() -> pd.DataFrame:
    """The daily-cycle case after two more days of the same cycle (a seasonal model exists)."""
    rng = np.random.default_rng(15)
    tail = daily_cycle_with_step_and_stuck()
    ts = tail["ts"].iloc[0] - 300.0 * np.arange(576, 0, -1)
    head = pd.DataFrame(
        {"ts": ts, "value": np.round(20.0 + 5.0 * np.sin(2 * np.pi * ts / DAY_S) + rng.normal(0.0, 0.5, ts.size), 3)}
    )
    return pd.concat([head, tail], ignore_index=True)


CASES = {
    "daily_cycle_forest": (daily_cycle_three_days, 576 + 288, False),
    "grid_faults_forest_safety": (lambda: _lead(grid_device_with_faults(), 10.0, 1), LEAD + 300, True),
    "stuck_start_late_freeze": (lambda: _lead(stuck_start_and_late_freeze(), 10.0, 2), 0, False),
    "quantised_finer_step_late": (lambda: _lead(quantised_with_a_finer_step_late(), 60.0, 3), 0, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_row_by_row_equals_one_call(case: str) -> None:
    make, train_rows, safety = CASES[case]
    frame = make()
    whole = detect_series(frame, train_rows, safety=safety).flags
    assert whole.shape == (len(frame),) and not whole[:train_rows].any()
    # The injected stretches are blatant: a detector that flags nothing or everything proves nothing.
    assert whole[train_rows:].any() and not whole[train_rows:].all()
    stepwise = _row_by_row(frame, train_rows, safety)
    differ = np.flatnonzero(stepwise != whole)
    assert differ.size == 0, f"rows whose verdict changes with later data: {differ[:20].tolist()}"
