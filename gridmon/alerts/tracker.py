"""Episode tracking: fold detector findings into alerts, across ingest batches and scans.

An episode is the anomalous readings of one device and metric with no gap longer than
`episode_gap_s` between them. It is one `alerts` row (its id is the episode id):
- a finding with no unresolved alert for its (device, metric) opens one → event `opened`;
- findings within the gap of an unresolved alert's span join it (count, peak, last_seen_at); a
  higher severity → event `escalated`;
- a finding more than the gap after the alert's last anomaly resolves it (`resolved`, reason
  `gap`) and opens a new one;
- when the scan has read the device's readings more than the gap past the alert's last anomaly
  and none of them was anomalous for the metric, the alert resolves (reason `normal`);
- a late finding inside an already-resolved episode's span joins it silently (no new alert for
  a fault already reported); one before an unresolved alert's span is recorded as a past
  episode (opened and resolved at once).

Both the ingest job (safety findings, seconds after a reading is stored) and the scan job (all
detectors) call `apply_findings`; `alert_readings` makes counting idempotent, so the reading the
ingest check and the scan both flag is counted once. Writers lock (device, metric) keys in sorted
order. Every statement runs in `gridmon.storage.alerts`; this module decides which ones.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import psycopg

from gridmon.detection.base import Finding
from gridmon.detection.episodes import group_into_episodes, join_detectors
from gridmon.domain.severity import severity_rank
from gridmon.storage import alerts as store
from gridmon.storage.alerts import AlertEvent, Row

log = logging.getLogger(__name__)

NO_DATA = "no_data"


@dataclass(frozen=True, slots=True)
class _Span:
    """One episode of one key: its extent, its peak and the distinct reading times in it."""

    start: float
    end: float
    severity: str
    value: float
    score: float
    detector: str
    description: str
    peak_ts: float
    ts: list[float]


def _outranks(severity: str, score: float, row: Row) -> bool:
    """Whether a peak (severity, score) beats the alert's: higher severity, then higher score."""
    current = (severity_rank(row["severity"]), row["score"] if row["score"] is not None else float("-inf"))
    return (severity_rank(severity), score) > current


def _spans(findings: Sequence[Finding], gap_s: float) -> list[_Span]:
    """Split one key's findings into episodes (the detection package's grouping rule)."""
    ordered = sorted(findings, key=lambda f: f.ts)
    spans = []
    for episode in group_into_episodes(ordered, max_gap_s=gap_s):
        inside = [f for f in ordered if episode.start <= f.ts <= episode.end]
        peak = max(inside, key=lambda f: (severity_rank(f.severity), f.score))
        spans.append(
            _Span(
                start=episode.start,
                end=episode.end,
                severity=episode.peak_severity,
                value=episode.peak_value,
                score=episode.score,
                detector=episode.detector,
                description=episode.description,
                peak_ts=peak.ts,
                ts=sorted({f.ts for f in inside}),
            )
        )
    spans.sort(key=lambda sp: sp.start)
    return spans


def _count_new(conn: psycopg.Connection, alert_id: int, ts: list[float]) -> int:
    """Record the readings of this alert; returns how many were not counted before."""
    return store.count_new_readings(conn, alert_id, ts)


def _merge(conn: psycopg.Connection, row: Row, span: _Span) -> tuple[Row, AlertEvent | None]:
    """Join a span to an unresolved alert; emits `escalated` when the severity rises."""
    added = _count_new(conn, row["id"], span.ts)
    changes: Row = {
        "readings_count": row["readings_count"] + added,
        "opened_at": min(row["opened_at"], store.to_datetime(span.start)),
        "last_seen_at": max(row["last_seen_at"], store.to_datetime(span.end)),
    }
    changes["detector"] = join_detectors((row["detector"], span.detector))
    escalates = severity_rank(span.severity) > severity_rank(row["severity"])
    if _outranks(span.severity, span.score, row):
        changes.update(
            severity=span.severity,
            value=span.value,
            value_ts=store.to_datetime(span.peak_ts),
            score=span.score,
            description=span.description,
        )
    new = store.update_alert(conn, row["id"], changes)
    if escalates:
        return new, store.emit(conn, new, "escalated", span.peak_ts)
    return new, None


def _absorb(conn: psycopg.Connection, row: Row, span: _Span) -> None:
    """Count late readings of an already-resolved episode; what was published stays as it was."""
    added = _count_new(conn, row["id"], span.ts)
    if added:
        store.update_alert(conn, row["id"], {"readings_count": row["readings_count"] + added})


def _covering_resolved(conn: psycopg.Connection, device_id: str, metric: str, span: _Span) -> Row | None:
    """A resolved alert of this key whose span contains all of `span` (late data of a reported
    fault). A span that runs past a resolved alert's last reading is not covered: it may be the
    fault going on after an operator resolved it, and must raise a new alert rather than vanish."""
    return store.covering_resolved(conn, device_id, metric, span.start, span.end)


def _open_new(
    conn: psycopg.Connection, device_id: str, metric: str, span: _Span, *, past: bool
) -> tuple[Row, list[AlertEvent]]:
    row = store.insert_alert(
        conn,
        device_id=device_id,
        metric=metric,
        detector=span.detector,
        severity=span.severity,
        opened_at=span.start,
        last_seen_at=span.end,
        value=span.value,
        value_ts=span.peak_ts,
        score=span.score,
        description=span.description,
        readings_count=len(span.ts),
        resolved_reason="late" if past else None,
    )
    _count_new(conn, row["id"], span.ts)
    events = [store.emit(conn, {**row, "state": "open", "resolved_at": None}, "opened", span.start)]
    if past:
        events.append(store.emit(conn, row, "resolved"))
    return row, events


def _apply_key(
    conn: psycopg.Connection,
    device_id: str,
    metric: str,
    spans: list[_Span],
    gap_s: float,
    seen_until: float | None,
) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    store.lock_key(conn, device_id, metric)
    current = store.open_alert(conn, device_id, metric)
    for span in spans:
        if current is not None:
            lo = current["opened_at"].timestamp() - gap_s
            hi = current["last_seen_at"].timestamp() + gap_s
            if span.end >= lo and span.start <= hi:
                current, event = _merge(conn, current, span)
                events += [event] if event else []
                continue
            if span.start > hi:
                _, event = store.resolve_row(conn, current, "gap")
                events.append(event)
                current = None
        covering = _covering_resolved(conn, device_id, metric, span)
        if covering is not None:
            _absorb(conn, covering, span)
        elif current is not None:
            # Late readings from before the unresolved alert: a separate, finished episode.
            _, new_events = _open_new(conn, device_id, metric, span, past=True)
            events += new_events
        else:
            current, new_events = _open_new(conn, device_id, metric, span, past=False)
            events += new_events
    if current is not None and seen_until is not None and seen_until > current["last_seen_at"].timestamp() + gap_s:
        _, event = store.resolve_row(conn, current, "normal")
        events.append(event)
    return events


def apply_findings(
    conn: psycopg.Connection,
    findings: Iterable[Finding],
    *,
    gap_s: float,
    seen_until: Mapping[str, float] | None = None,
) -> list[AlertEvent]:
    """Fold findings into alerts (caller's transaction) and return the events written.

    `seen_until` (device → latest reading ts just scanned) lets the scan resolve alerts whose
    device has reported past the gap without the anomaly; the ingest job passes None, because
    it only runs the safety check and cannot tell a statistically normal reading.
    """
    by_key: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        by_key[(f.device_id, f.metric)].append(f)
    keys = set(by_key)
    if seen_until:
        keys.update(store.unresolved_keys(conn, list(seen_until), except_metric=NO_DATA))
    events: list[AlertEvent] = []
    for device_id, metric in sorted(keys):
        spans = _spans(by_key.get((device_id, metric), []), gap_s)
        until = seen_until.get(device_id) if seen_until and metric != NO_DATA else None
        events += _apply_key(conn, device_id, metric, spans, gap_s, until)
    return events
