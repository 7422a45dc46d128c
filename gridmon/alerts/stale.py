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

Silence is the device's fault only while gridmon was listening. Time inside a pipeline outage —
a planned stop of `gridmon up`, a gap in the bridges' heartbeat (`gridmon.storage.outages`), or
an outage going on now (`ongoing_since`, from the heartbeat) — is not counted: a restart after a
two-minute stop raises nothing, while a device that stays silent once gridmon listens again
alerts as usual, its silence counted from its last reading minus the outage.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import psycopg

from gridmon.alerts.condition import Condition, ConditionAlert, sync_conditions
from gridmon.storage import alerts as store
from gridmon.storage import outages, silences
from gridmon.storage.alerts import AlertEvent

log = logging.getLogger(__name__)

METRIC = "no_data"
DETECTOR = "staleness"
SEVERITY = "medium"
ALERT = ConditionAlert(METRIC, DETECTOR, "no_data", SEVERITY)
_INTERVAL_SAMPLE = 21  # readings whose 20 gaps give a device's usual interval

def covered(intervals: list[outages.Interval], start: float, end: float) -> float:
    """Seconds of [start, end] inside the (merged) intervals."""
    return sum(max(0.0, min(hi, end) - max(lo, start)) for lo, hi in intervals)


def check_stale(
    conn: psycopg.Connection,
    *,
    factor: float,
    min_silence_s: float,
    now: float | None = None,
    ongoing_since: float | None = None,
) -> list[AlertEvent]:
    """Open, refresh and resolve `no_data` alerts (caller's transaction); returns the events.

    `ongoing_since`: the pipeline has not been listening since then (and still is not)."""
    now = time.time() if now is None else now
    candidates = silences.silence_candidates(conn, now=now, min_silence_s=min_silence_s, sample=_INTERVAL_SAMPLE)
    gaps: list[outages.Interval] = []
    if candidates:
        earliest = min(last_seen.timestamp() for _, last_seen, _ in candidates)
        extra = [(ongoing_since, now)] if ongoing_since is not None else []
        gaps = outages.merge(outages.outages_between(conn, earliest, now) + extra)
    stale: dict[str, tuple[datetime, float, float]] = {}
    for device_id, last_seen, usual_s in candidates:
        usual = max(usual_s, 1e-3)
        excused = covered(gaps, last_seen.timestamp(), now)
        silence = now - last_seen.timestamp() - excused
        if silence > max(factor * usual, min_silence_s):
            stale[device_id] = (last_seen, usual, excused)
    reporting = silences.reporting_again(conn, METRIC)
    holding: dict[str, Condition] = {}
    for device_id, (last_seen, usual, excused) in stale.items():
        if device_id in reporting:
            continue
        silence = now - last_seen.timestamp() - excused
        description = f"no data for {silence:.0f} s (usual interval {usual:.1f} s)"
        if excused > 0:
            description += f"; {excused:.0f} s of pipeline outage not counted"
        holding[device_id] = Condition(value=silence, score=silence / usual, description=description, since=last_seen)

    def may_open(device_id: str, condition: Condition) -> bool:
        # One silence is one alert: one resolved by hand is not reported again.
        return not silences.alert_opened_at(conn, device_id, METRIC, store.to_datetime(condition.since))

    return sync_conditions(
        conn, ALERT, holding=holding, ended=reporting, reason="reporting", now=now, may_open=may_open
    )
