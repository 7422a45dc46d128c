"""Alerts that stand while a condition holds: one unresolved alert per device and metric.

The alert opens when the condition is first seen, is refreshed while it lasts (`value`, `score`,
text and `last_seen_at`, without a new event) and resolves with the caller's reason when it
ends. `no_data` (`gridmon.alerts.stale`) and `data_gap` (`gridmon.alerts.gaps`) are such alerts;
each decides which devices hold and which ended, this module keeps the alert lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg

from gridmon.storage import alerts as store
from gridmon.storage.alerts import AlertEvent


@dataclass(frozen=True, slots=True)
class ConditionAlert:
    """What kind of alert a condition raises."""

    metric: str
    detector: str
    kind: str
    severity: str


@dataclass(frozen=True, slots=True)
class Condition:
    """A device's condition now: its measure, score and text, and since when it holds (the new
    alert's `opened_at`)."""

    value: float
    score: float
    description: str
    since: float | datetime


def sync_conditions(
    conn: psycopg.Connection,
    alert: ConditionAlert,
    *,
    holding: Mapping[str, Condition],
    ended: Iterable[str],
    reason: str,
    now: float,
    may_open: Callable[[str, Condition], bool] | None = None,
) -> list[AlertEvent]:
    """Open or refresh the alert of every device in `holding`, resolve with `reason` the open
    alert of every device in `ended` (caller's transaction); returns the events. `may_open` can
    veto a new alert (e.g. this very condition was already reported and resolved by hand)."""
    events: list[AlertEvent] = []
    for device_id in sorted(set(holding) | set(ended)):
        store.lock_key(conn, device_id, alert.metric)
        current = store.open_alert(conn, device_id, alert.metric)
        condition = holding.get(device_id)
        if condition is None:
            if current is not None:
                _, event = store.resolve_row(conn, current, reason)
                events.append(event)
            continue
        if current is not None:
            changes = {
                "last_seen_at": store.to_datetime(now),
                "value": condition.value,
                "score": condition.score,
                "description": condition.description,
            }
            store.update_alert(conn, current["id"], changes)
            continue
        if may_open is not None and not may_open(device_id, condition):
            continue
        row = store.insert_alert(
            conn,
            device_id=device_id,
            metric=alert.metric,
            detector=alert.detector,
            severity=alert.severity,
            opened_at=condition.since,
            last_seen_at=now,
            value=condition.value,
            value_ts=None,
            score=condition.score,
            description=condition.description,
            kind=alert.kind,
        )
        since = condition.since.timestamp() if isinstance(condition.since, datetime) else condition.since
        events.append(store.emit(conn, row, "opened", since))
    return events
