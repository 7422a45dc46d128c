"""Anomaly alerts: the streaming detector's alarm runs → one alert per device and fault.

The detector decides when a device is in alarm and when it is back inside its expected band
(`gridmon.detection.stream`); this module mirrors that in the `alerts` table (kind `anomaly`):
- a run that starts in this batch opens an alert (`opened`), listing every metric involved;
- a run that continues the previous batch's alarm extends the open alert: readings, metrics,
  last seen, the peak (value, expected band, ratio) and the severity, which grows with the peak
  and with the duration (`escalated` when it rises);
- a run that ends in the batch, or an alarm that ended right at its start, resolves the alert
  (`resolved`, reason `normal`) at once — there is no gap timer: the alarm's end is the
  detector's verdict that the signal is back inside its band;
- a continuing alarm whose alert an operator already resolved opens a new alert.

At most one unresolved anomaly alert per device (a unique index); writers lock the device's key.
Counts and text agree: `readings_count` is the number of readings in alarm, and the description
names the peak metric, its value, the expected band at that moment and the other metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg

from gridmon.detection.stream.episodes import AlarmRun, describe, severity_for
from gridmon.domain.severity import severity_rank
from gridmon.storage import alerts as store
from gridmon.storage.alerts import AlertEvent, Row

log = logging.getLogger(__name__)

KIND = "anomaly"
DETECTOR = "statistical"
UNITS = {"voltage": "V", "current": "A", "temperature": "°C"}


def _open(conn: psycopg.Connection, device_id: str, run: AlarmRun, detector: str) -> tuple[Row, AlertEvent]:
    row = store.insert_alert(
        conn,
        device_id=device_id,
        metric=run.peak_metric,
        detector=detector,
        severity=run.severity(),
        opened_at=run.start,
        last_seen_at=run.end,
        value=run.peak_value,
        value_ts=run.peak_ts,
        score=run.peak_ratio,
        description=run.description(UNITS),
        readings_count=run.readings,
        kind=KIND,
        metrics=list(run.metrics),
        expected=run.expected,
        band=run.band,
    )
    return row, store.emit(conn, row, "opened", run.start)


def _extend(conn: psycopg.Connection, row: Row, run: AlarmRun) -> tuple[Row, AlertEvent | None]:
    opened = row["opened_at"].timestamp()
    peak = max(float(row["score"] or 0.0), run.peak_ratio)
    severity = severity_for(peak, run.end - opened)
    metrics = list(dict.fromkeys([*(row["metrics"] or [row["metric"]]), *run.metrics]))
    changes: Row = {
        "last_seen_at": store.to_datetime(run.end),
        "readings_count": int(row["readings_count"]) + run.readings,
        "metrics": metrics,
    }
    if severity_rank(severity) > severity_rank(row["severity"]):
        changes["severity"] = severity
    if run.peak_ratio > float(row["score"] or 0.0):
        band = run.band
        changes.update(
            metric=run.peak_metric,
            value=run.peak_value,
            value_ts=store.to_datetime(run.peak_ts),
            score=run.peak_ratio,
            expected=run.expected,
            band_lo=band[0] if band else None,
            band_hi=band[1] if band else None,
        )
    merged = {**row, **changes}
    band_now = (merged["band_lo"], merged["band_hi"]) if merged["band_lo"] is not None else None
    changes["description"] = describe(
        merged["metric"], float(merged["value"]), band_now, float(merged["score"]), metrics, UNITS
    )
    new = store.update_alert(conn, row["id"], changes)
    if "severity" in changes:
        return new, store.emit(conn, new, "escalated", run.end)
    return new, None


def apply_runs(
    conn: psycopg.Connection,
    device_id: str,
    runs: Sequence[AlarmRun],
    *,
    ended_at: float | None = None,
    detector: str = DETECTOR,
) -> list[AlertEvent]:
    """Fold one device's alarm runs of one batch into its anomaly alert (caller's transaction).

    `ended_at`: the alarm that was open at the end of the previous batch ended at this reading
    (the batch's first reading was back inside the band).
    """
    events: list[AlertEvent] = []
    store.lock_key(conn, device_id, KIND)
    current = store.open_anomaly(conn, device_id)
    if current is not None and ended_at is not None:
        _, event = store.resolve_row(conn, current, "normal")
        events.append(event)
        current = None
    for run in runs:
        if current is not None and run.continued:
            current, maybe = _extend(conn, current, run)
            events += [maybe] if maybe else []
        else:
            if current is not None:
                # An alert this alarm does not continue (its state was reset): it is over.
                _, event = store.resolve_row(conn, current, "normal")
                events.append(event)
            current, event = _open(conn, device_id, run, detector)
            events.append(event)
        if run.closed and current is not None:
            _, event = store.resolve_row(conn, current, "normal")
            events.append(event)
            current = None
    return events
