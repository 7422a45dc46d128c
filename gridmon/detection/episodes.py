"""Episodes: consecutive anomalous readings of one device and metric, reported as one event.

A fault that lasts an hour produces 1,800 anomalous readings at one every 2 s; an operator
wants one alert. Findings of the same device and metric belong to the same episode while the
gap between consecutive findings is at most `max_gap_s` (a short dip under the threshold in the
middle of a fault does not split it); a longer quiet gap closes the episode.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gridmon.detection.base import Finding, severity_rank


@dataclass
class Episode:
    """One anomalous stretch of one device's metric."""

    device_id: str
    metric: str
    start: float
    end: float
    peak_severity: str
    findings_count: int
    peak_value: float
    detector: str
    score: float
    description: str

    @property
    def duration_s(self) -> float:
        return self.end - self.start


def join_detectors(names: Iterable[str | None]) -> str:
    """`safety`, `forest+statistical` → `forest+safety+statistical` (the pipeline's convention)."""
    parts = {part for name in names if name for part in name.split("+")}
    return "+".join(sorted(parts))


def group_into_episodes(findings: Iterable[Finding], *, max_gap_s: float) -> list[Episode]:
    """Group findings per (device, metric) into episodes; sorted by start, then device, metric.

    The peak is the finding with the highest severity (the highest score among equals); its
    value, score and description describe the episode.
    """
    by_key: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        by_key[(finding.device_id, finding.metric)].append(finding)
    episodes: list[Episode] = []
    for (device_id, metric), items in by_key.items():
        items.sort(key=lambda f: f.ts)
        current: list[Finding] = [items[0]]
        for finding in items[1:]:
            if finding.ts - current[-1].ts > max_gap_s:
                episodes.append(_close(device_id, metric, current))
                current = [finding]
            else:
                current.append(finding)
        episodes.append(_close(device_id, metric, current))
    episodes.sort(key=lambda e: (e.start, e.device_id, e.metric))
    return episodes


def _close(device_id: str, metric: str, items: list[Finding]) -> Episode:
    peak = max(items, key=lambda f: (severity_rank(f.severity), f.score))
    return Episode(
        device_id=device_id,
        metric=metric,
        start=items[0].ts,
        end=items[-1].ts,
        peak_severity=peak.severity,
        findings_count=len(items),
        peak_value=peak.value,
        detector=join_detectors(f.detector for f in items),
        score=peak.score,
        description=peak.description,
    )
