"""Scoring detections against ground truth: event-level and point-wise figures.

Event matching (used by `gridmon eval` on the simulator's catalogue and on labelled CSVs):
- A truth event is (device, start, end). It is *detected* when at least one episode of the same
  device (any metric) overlaps [start − tolerance, end + tolerance]. A fault shows in more than
  one metric (a sag also raises current), so the metric is not part of the match.
- An episode that overlaps no truth window of its device is a *false positive*; episodes that
  overlap a truth window are true positives (several may match one event: that is
  fragmentation, reported separately as episodes per detected event, not as false alarms).
- precision = matched episodes / episodes; recall = detected events / events; F1 their harmonic
  mean. With no episodes at all, precision is 1.0 (nothing claimed wrongly); with no events,
  recall is 1.0.
- Detection delay of a detected event = start of the earliest matching episode − event start,
  floored at 0 (an episode that began within the tolerance before the event counts as on
  time). The median over detected events is reported.
- False alerts per device-day: false-positive episodes on the fault-free devices divided by
  their number of device-days.

Point-wise (the SKAB protocol): F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN),
MAR = FN / (FN + TP), over all scored readings.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gridmon.detection.episodes import Episode

DAY_S = 86400.0


@dataclass(frozen=True)
class TruthEvent:
    """One labelled anomaly: a device and a time window (UTC epoch seconds)."""

    device_id: str
    start: float
    end: float
    kind: str = "anomaly"


@dataclass
class EventMatch:
    """Outcome of matching episodes to truth events."""

    detected: list[bool]
    delays: list[float | None]
    episode_matched: list[bool]


def match_events(episodes: Sequence[Episode], truth: Sequence[TruthEvent], *, tolerance_s: float) -> EventMatch:
    """Match episodes and events of the same device whose windows overlap (see module doc)."""
    by_device: dict[str, list[int]] = defaultdict(list)
    for i, event in enumerate(truth):
        by_device[event.device_id].append(i)
    detected = [False] * len(truth)
    first: list[float | None] = [None] * len(truth)
    matched = [False] * len(episodes)
    for j, ep in enumerate(episodes):
        for i in by_device.get(ep.device_id, ()):
            event = truth[i]
            if ep.start <= event.end + tolerance_s and ep.end >= event.start - tolerance_s:
                matched[j] = True
                detected[i] = True
                earliest = first[i]
                first[i] = ep.start if earliest is None else min(earliest, ep.start)
    delays: list[float | None] = [None if t is None else max(0.0, t - truth[i].start) for i, t in enumerate(first)]
    return EventMatch(detected=detected, delays=delays, episode_matched=matched)


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def event_scores(
    episodes: Sequence[Episode],
    truth: Sequence[TruthEvent],
    *,
    tolerance_s: float,
    fault_free_devices: Iterable[str] = (),
    fault_free_days: float = 0.0,
) -> dict[str, float | int | None]:
    """Event-level precision, recall, F1, delay and false alerts (see module doc)."""
    match = match_events(episodes, truth, tolerance_s=tolerance_s)
    n_ep = len(episodes)
    tp_ep = sum(match.episode_matched)
    n_ev = len(truth)
    n_det = sum(match.detected)
    precision = tp_ep / n_ep if n_ep else 1.0
    recall = n_det / n_ev if n_ev else 1.0
    delays = [d for d in match.delays if d is not None]
    free = set(fault_free_devices)
    free_fp = sum(1 for ep, ok in zip(episodes, match.episode_matched, strict=True) if not ok and ep.device_id in free)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "median_delay_s": statistics.median(delays) if delays else None,
        "false_alerts_per_device_day": (free_fp / fault_free_days) if fault_free_days > 0 else None,
        "events": n_ev,
        "detected": n_det,
        "episodes": n_ep,
        "false_episodes": n_ep - tp_ep,
        "episodes_per_detected_event": (tp_ep / n_det) if n_det else None,
    }


def pointwise_counts(flag: np.ndarray, label: np.ndarray) -> dict[str, int]:
    """TP, FP, FN, TN of boolean predictions against boolean labels."""
    flag = np.asarray(flag, dtype=bool)
    label = np.asarray(label, dtype=bool)
    return {
        "tp": int(np.sum(flag & label)),
        "fp": int(np.sum(flag & ~label)),
        "fn": int(np.sum(~flag & label)),
        "tn": int(np.sum(~flag & ~label)),
    }


def pointwise_scores(counts: dict[str, int]) -> dict[str, float]:
    """SKAB's point-wise F1, FAR and MAR from summed counts."""
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    return {
        "f1": tp / (tp + (fp + fn) / 2) if tp + fp + fn else 1.0,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
    }


def label_segments(device_id: str, ts: np.ndarray, label: np.ndarray) -> list[TruthEvent]:
    """Contiguous runs of positive labels as truth events (rows in time order)."""
    label = np.asarray(label, dtype=bool)
    if label.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], label.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [TruthEvent(device_id, float(ts[s]), float(ts[e])) for s, e in zip(starts, ends, strict=True)]
