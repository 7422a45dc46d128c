"""`--phases N`: how much of an evaluation figure owes to when the thresholds are refitted.

Every score's threshold is refitted every `RECOMPUTE_EVERY` (32) readings. A fault that builds
up over a few dozen readings meets either a threshold fitted before it began or one refitted
with its first readings already in the history, and which of the two depends on where the
refits fall: an accident of when the device's history started, not a property of the detector.
On a small corpus whose faults sit near the thresholds this moves the figures by several points.

`run_phases` reruns an evaluation with the refits shifted by 0, 32/N, 2·32/N, … readings
(`DetectorParams.refit_phase`) and summarises every numeric figure of the detector's row over
the shifts: mean, min and max. The report itself stays the one of shift 0, the configuration a
deployment runs; the summary is added under `refit_phases`. The trivial rows do not depend on the
shift. Read a target as met only when the mean meets it.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from typing import Any

from gridmon.detection.stream.kernel import RECOMPUTE_EVERY
from gridmon.evaluation.adapter import use_refit_phase

log = logging.getLogger(__name__)

SUMMARIES = ("mean", "min", "max")


def offsets(n: int) -> list[int]:
    """N refit shifts spread evenly over one refit period (the first is 0)."""
    period = int(RECOMPUTE_EVERY)
    if not 1 <= n <= period:
        raise ValueError(f"--phases must be 1 to {period}, got {n}")
    return sorted({round(i * period / n) for i in range(n)})


def _summarise(values: list[Any], how: str) -> Any:
    """`how` (mean, min or max) of the numbers at the same place in each row; nested rows are
    summarised key by key, anything else is taken from the first row."""
    first = values[0]
    if isinstance(first, dict):
        return {key: _summarise([v[key] for v in values], how) for key in first}
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        numbers = [float(v) for v in values]
        if how == "mean":
            return statistics.fmean(numbers)
        return min(numbers) if how == "min" else max(numbers)
    return first


def run_phases(evaluate: Callable[[], dict[str, Any]], n: int, row: str = "gridmon") -> dict[str, Any]:
    """The report of `evaluate()` at shift 0, with `refit_phases`: the shifts, the detector's
    row at each, and its mean/min/max over them (n = 1: the report alone)."""
    shifts = offsets(n)
    if n == 1:
        return evaluate()
    found: dict[int, dict[str, Any]] = {}
    try:
        # shift 0 last, so whatever an evaluation writes on the way (`--out`) is shift 0's
        for shift in [*shifts[1:], shifts[0]]:
            use_refit_phase(shift)
            found[shift] = evaluate()
            log.debug("refit shift %d: %s", shift, found[shift]["rows"][row])
    finally:
        use_refit_phase(0)
    report = found[0]
    rows = [found[shift]["rows"][row] for shift in shifts]
    report["refit_phases"] = {
        "shifts": shifts,
        "rows": rows,
        **{how: _summarise(rows, how) for how in SUMMARIES},
    }
    return report


def summary_rows(report: dict[str, Any], row: str = "gridmon") -> dict[str, Any]:
    """The table rows of a report, with the shifts' mean/min/max under the detector's row."""
    rows = dict(report["rows"])
    spread = report.get("refit_phases")
    if spread:
        n = len(spread["shifts"])
        ordered: dict[str, Any] = {}
        for name, value in rows.items():
            ordered[name] = value
            if name == row:
                for how in SUMMARIES:
                    ordered[f"  {how} of {n} shifts"] = spread[how]
        rows = ordered
    return rows
