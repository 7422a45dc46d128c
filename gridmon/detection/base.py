"""The contract between detectors and everything that uses them (scan job, ingest job, evaluation).

A frame of readings is a pandas DataFrame with columns `device_id` (str), `ts` (float, UTC epoch
seconds), `voltage`, `current`, `temperature` (float) and optionally further numeric metric
columns (from `extra`). Rows may come in any order; detectors sort what they need.

Every detector returns a `DetectionResult`: one `Finding` per anomalous (reading, metric).
Severity is one of `SEVERITIES` (the project's one scale, `gridmon.domain.severity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridmon.domain.severity import SEVERITIES, severity_rank

__all__ = ["METRICS", "SEVERITIES", "DetectionResult", "Finding", "severity_rank"]

METRICS = ("voltage", "current", "temperature")


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomalous value of one metric of one reading."""

    device_id: str
    ts: float
    metric: str
    value: float
    severity: str
    detector: str
    score: float
    description: str


@dataclass(slots=True)
class DetectionResult:
    """What one detector found in one frame."""

    detector: str
    scored: int
    findings: list[Finding] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
