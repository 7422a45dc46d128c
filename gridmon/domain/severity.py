"""The one severity scale: alert severities and maintenance risk levels use the same four steps.

`Severity` is the type the API validates against; `SEVERITIES` is the same scale as a tuple, in
increasing order, and `severity_rank` compares two steps.
"""

from __future__ import annotations

from typing import Literal, get_args

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


def severity_rank(severity: str) -> int:
    """0 for low … 3 for critical."""
    return SEVERITIES.index(severity)
