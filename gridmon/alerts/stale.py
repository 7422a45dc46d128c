"""Silent devices: a `no_data` alert when a device stops reporting, resolved when it reports again.

A device is stale when it has been silent for longer than `stale_factor` × its usual interval
(the median gap between its last readings) and at least `stale_min_s`. Its `no_data` alert
(metric `no_data`, detector `staleness`) opens at the silence's start (the last reading's ts);
`value` is the silence so far in seconds and `score` the silence in usual intervals, both
refreshed on every check without a new event. It resolves (reason `reporting`) as soon as a
reading newer than the silence's start is stored. One silence is one alert: if an operator
resolves it by hand, the same silence is not reported again.

"Silent" is measured on reading timestamps (`devices.last_seen`) against the wall clock, so a
device whose clock runs far behind looks silent; sensors are expected to keep NTP time.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from gridmon.alerts import store
from gridmon.alerts.store import AlertEvent

log = logging.getLogger(__name__)

METRIC = "no_data"
DETECTOR = "staleness"
SEVERITY = "medium"
_INTERVAL_SAMPLE = 21  # readings whose 20 gaps give a device's usual interval

_CANDIDATES = """
SELECT d.device_id, d.last_seen, g.usual
FROM devices d
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS usual FROM (
        SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts))::float8 AS gap
        FROM (SELECT ts FROM sensor_readings r WHERE r.device_id = d.device_id ORDER BY ts DESC LIMIT %(n)s) recent
    ) gaps WHERE gap IS NOT NULL
) g
WHERE d.last_seen < to_timestamp(%(now)s) - make_interval(secs => %(min_s)s) AND g.usual IS NOT NULL
"""

_REPORTING_AGAIN = """
SELECT a.id, a.device_id FROM alerts a JOIN devices d USING (device_id)
WHERE a.metric = %s AND a.state <> 'resolved' AND d.last_seen > a.opened_at
"""


def check_stale(
    conn: psycopg.Connection, *, factor: float, min_silence_s: float, now: float | None = None
) -> list[AlertEvent]:
    """Open, refresh and resolve `no_data` alerts (caller's transaction); returns the events."""
    now = time.time() if now is None else now
    stale: dict[str, tuple[datetime, float]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(_CANDIDATES, {"n": _INTERVAL_SAMPLE, "now": now, "min_s": min_silence_s}):
            usual = max(float(row["usual"]), 1e-3)
            silence = now - row["last_seen"].timestamp()
            if silence > max(factor * usual, min_silence_s):
                stale[row["device_id"]] = (row["last_seen"], usual)
    reporting = {str(device): int(alert_id) for alert_id, device in conn.execute(_REPORTING_AGAIN, (METRIC,))}

    events: list[AlertEvent] = []
    for device_id in sorted(set(stale) | set(reporting)):
        store.lock_key(conn, device_id, METRIC)
        current = store.open_alert(conn, device_id, METRIC)
        if device_id in reporting:
            if current is not None:
                _, event = store.resolve_row(conn, current, "reporting")
                events.append(event)
            continue
        last_seen, usual = stale[device_id]
        silence = now - last_seen.timestamp()
        changes = {
            "last_seen_at": store.to_datetime(now),
            "value": silence,
            "score": silence / usual,
            "description": f"no data for {silence:.0f} s (usual interval {usual:.1f} s)",
        }
        if current is not None:
            store.update_alert(conn, current["id"], changes)
            continue
        if _silence_reported(conn, device_id, last_seen):
            continue
        row = store.insert_alert(
            conn,
            device_id=device_id,
            metric=METRIC,
            detector=DETECTOR,
            severity=SEVERITY,
            opened_at=last_seen,
            last_seen_at=now,
            value=silence,
            value_ts=None,
            score=silence / usual,
            description=str(changes["description"]),
        )
        events.append(store.emit(conn, row, "opened", last_seen.timestamp()))
    return events


def _silence_reported(conn: psycopg.Connection, device_id: str, last_seen: datetime) -> bool:
    """Whether this very silence (same start) already had a no_data alert (resolved by hand)."""
    found = conn.execute(
        "SELECT 1 FROM alerts WHERE device_id = %s AND metric = %s AND opened_at = %s LIMIT 1",
        (device_id, METRIC, last_seen),
    ).fetchone()
    return found is not None
