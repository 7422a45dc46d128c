"""Scoring alarms against ground truth: event-level, alarm time, and point-wise figures.

An *alarm* is one episode of a device's alarm (the device is in alarm while any metric is
flagged): flagged readings of the device closer than the episode gap (the production setting
`GRIDMON_EPISODE_GAP_S`) belong to one alarm (`alarms_from_flags`). It stands from its first
flagged reading until one reading interval after its last (`hold_s`, the device's median
interval), so a one-reading alarm has a length too.

Against truth events (device, start, end), with a tolerance around each window:
- an event is *detected* when an alarm of its device overlaps [start − tol, end + tol];
- an alarm that overlaps no window ± tol of its device is a *false alert* — on every device,
  faulty or not; `false_alerts_per_device_day` = false alerts / (devices × days scored);
- precision = alarms that overlap a window / alarms; recall = detected events / events; F1;
- `alarm_time_precision` = share of all alarm time that lies inside windows ± tol: an alarm
  that overlaps a window but goes on for hours after it counts as a match for precision, and
  its hours outside as false-alarm time here;
- delay of a detected event = start of its earliest overlapping alarm − event start, floored
  at 0; the median over detected events is reported.
With no alarms, precision and alarm-time precision are None (nothing claimed) and F1 is 0.

Point-wise (the SKAB protocol): F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN),
MAR = FN / (FN + TP), over all scored readings.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TruthEvent:
    """One labelled anomaly: a device and a time window (UTC epoch seconds)."""

    device_id: str
    start: float
    end: float
    kind: str = "anomaly"


@dataclass(frozen=True)
class Alarm:
    """One episode of a device's alarm: first and last flagged reading, and how long it stands after."""

    device_id: str
    start: float
    end: float
    hold_s: float = 0.0

    @property
    def until(self) -> float:
        return self.end + self.hold_s


def alarms_from_flags(device_id: str, ts: np.ndarray, flags: np.ndarray, *, gap_s: float) -> list[Alarm]:
    """Episodes of one device's flagged readings (`ts` sorted); gaps longer than `gap_s` split them."""
    ts = np.asarray(ts, dtype=float)
    hit = ts[np.asarray(flags, dtype=bool)]
    if hit.size == 0:
        return []
    hold = float(np.median(np.diff(ts))) if ts.size > 1 else 0.0
    breaks = np.flatnonzero(np.diff(hit) > gap_s)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [hit.size - 1]])
    return [Alarm(device_id, float(hit[s]), float(hit[e]), hold) for s, e in zip(starts, ends, strict=True)]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and a1 >= b0


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _inside(lo: float, hi: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(hi, b) - max(lo, a)) for a, b in spans)


def _f1(precision: float | None, recall: float | None) -> float | None:
    if recall is None:
        return None
    if precision is None or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def event_scores(
    alarms: Sequence[Alarm], truth: Sequence[TruthEvent], *, tolerance_s: float, device_days: float
) -> dict[str, float | int | None]:
    """Event-level precision, recall, F1, delay, false alerts and alarm-time precision (module doc)."""
    windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    events_of: dict[str, list[int]] = defaultdict(list)
    for k, event in enumerate(truth):
        windows[event.device_id].append((event.start - tolerance_s, event.end + tolerance_s))
        events_of[event.device_id].append(k)
    merged = {device: _union(spans) for device, spans in windows.items()}
    first: list[float | None] = [None] * len(truth)
    matched = 0
    alarm_s = inside_s = 0.0
    for alarm in alarms:
        hit = False
        for k in events_of.get(alarm.device_id, ()):
            event = truth[k]
            if _overlap(alarm.start, alarm.until, event.start - tolerance_s, event.end + tolerance_s):
                hit = True
                earliest = first[k]
                first[k] = alarm.start if earliest is None else min(earliest, alarm.start)
        matched += int(hit)
        alarm_s += alarm.until - alarm.start
        inside_s += _inside(alarm.start, alarm.until, merged.get(alarm.device_id, []))
    delays = [max(0.0, t - truth[k].start) for k, t in enumerate(first) if t is not None]
    detected = len(delays)
    precision = matched / len(alarms) if alarms else None
    recall = detected / len(truth) if truth else None
    false = len(alarms) - matched
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "median_delay_s": statistics.median(delays) if delays else None,
        "false_alerts_per_device_day": false / device_days if device_days > 0 else None,
        "alarm_time_precision": inside_s / alarm_s if alarm_s > 0 else None,
        "events": len(truth),
        "detected": detected,
        "alarms": len(alarms),
        "false_alerts": false,
        "alarm_hours": alarm_s / 3600.0,
        "alarms_per_detected_event": matched / detected if detected else None,
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
