"""Lost readings: a `data_gap` alert when a device's `seq` shows too many readings missing.

Over the last `window_s` seconds, a device's missing share is missing / (missing + received),
from `reading_gaps` (gaps counted at ingest, `gridmon.storage.seq_gaps`) and the readings stored.
Above `share` (and with at least `min_missing` missing) the device gets one unresolved `data_gap`
alert (metric `data_gap`, detector `sequence`, kind `data_gap`): `value` is the readings missing in
the window and `score` the share, both refreshed on every check. It resolves (reason `recovered`)
when the share is back at or below `share`, e.g. after the window has moved past the loss or late
readings filled the gap. Devices without `seq` never alert here (their gaps are not known).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import psycopg

from gridmon.alerts.condition import Condition, ConditionAlert, sync_conditions
from gridmon.storage import alerts as store
from gridmon.storage import seq_gaps
from gridmon.storage.alerts import AlertEvent

log = logging.getLogger(__name__)

METRIC = "data_gap"
DETECTOR = "sequence"
KIND = "data_gap"
SEVERITY = "medium"
ALERT = ConditionAlert(METRIC, DETECTOR, KIND, SEVERITY)


def check_gaps(
    conn: psycopg.Connection,
    *,
    share: float,
    window_s: float,
    min_missing: int,
    now: float | None = None,
) -> list[AlertEvent]:
    """Open, refresh and resolve `data_gap` alerts (caller's transaction); returns the events."""
    now = time.time() if now is None else now
    since = store.to_datetime(now) - timedelta(seconds=window_s)
    lossy: dict[str, tuple[int, int, float]] = {}
    for device_id, received, missing in seq_gaps.window_shares(conn, since, min_missing):
        ratio = missing / (missing + received) if missing + received else 0.0
        if ratio > share:
            lossy[device_id] = (received, missing, ratio)
    holding = {
        device_id: Condition(
            value=float(missing),
            score=ratio,
            description=(
                f"{missing} of {missing + received} readings missing ({ratio:.1%}) in the last {window_s:.0f} s "
                f"(limit {share:.1%}), by the device's seq"
            ),
            since=now,
        )
        for device_id, (received, missing, ratio) in lossy.items()
    }
    ended = store.devices_with_open(conn, KIND) - set(lossy)
    return sync_conditions(conn, ALERT, holding=holding, ended=ended, reason="recovered", now=now)
