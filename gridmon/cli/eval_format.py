"""Tables the `gridmon eval …` commands print before their JSON line (plain text, fixed width)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

# One refit period of the detector (kernel.RECOMPUTE_EVERY, not imported here: the kernel loads numba).
phases_option = click.option(
    "--phases",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Rerun with every threshold's refits shifted N ways and print the mean/min/max of each figure "
    "(how much of it is the refits' timing; docs/evaluation.md).",
)

budget_option = click.option(
    "--budget",
    type=click.FloatRange(0.0, 10.0, min_open=True),
    default=None,
    help="Alarm budget (false alarms per device-day) every threshold is calibrated for "
    "[default: GRIDMON_ALARMS_PER_DEVICE_DAY, 0.05; docs/evaluation.md].",
)


def budget_of(value: float | None) -> float:
    """`--budget`, or the deployment's setting when it is not given (what the scan runs with)."""
    from gridmon.config import get_settings

    return float(value) if value is not None else float(get_settings().alarms_per_device_day)


def budget_line(alarms_per_day: float) -> str:
    """The line under a table that says which alarm budget the detector was scored with."""
    return f"alarm budget: {alarms_per_day:g} false alarms per device-day (--budget)"


def fmt(value: Any, digits: int = 3) -> str:
    """A cell: '-' for None, fixed decimals for floats (none for large ones)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 10_000 else f"{value:.0f}"
    return str(value)


def table(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str]], digits: int = 3) -> str:
    """One line per row: its name, then `columns` given as (key, heading)."""
    width = max([len(name) for name in rows] + [4]) + 2
    cells = [max(len(heading), 9) + 2 for _, heading in columns]
    lines = [f"{'':{width}}" + "".join(f"{heading:>{w}}" for (_, heading), w in zip(columns, cells, strict=True))]
    for name, row in rows.items():
        values = (fmt(row.get(key), digits) for key, _ in columns)
        lines.append(f"{name:{width}}" + "".join(f"{v:>{w}}" for v, w in zip(values, cells, strict=True)))
    return "\n".join(lines)


def anchors_line(title: str, anchors: Mapping[str, Any]) -> str:
    """`title: name value, name value …` for the published results a table is read against."""
    parts = ", ".join(f"{name} {value}" for name, value in anchors.items() if isinstance(value, int | float))
    return f"{title}: {parts}"
