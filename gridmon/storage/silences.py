"""What the staleness check (`gridmon.alerts.stale`) reads: silent devices with their usual
reporting interval, devices reporting again, and whether one silence was already reported."""

from __future__ import annotations

from datetime import datetime

import psycopg

_STALE_CANDIDATES = """
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


def silence_candidates(
    conn: psycopg.Connection, *, now: float, min_silence_s: float, sample: int
) -> list[tuple[str, datetime, float]]:
    """(device_id, last_seen, usual interval s) of devices silent for at least `min_silence_s`;
    the usual interval is the median gap between the device's last `sample` readings."""
    rows = conn.execute(_STALE_CANDIDATES, {"n": sample, "now": now, "min_s": min_silence_s}).fetchall()
    return [(str(device), last_seen, float(usual)) for device, last_seen, usual in rows]


def reporting_again(conn: psycopg.Connection, metric: str) -> dict[str, int]:
    """device_id → id of its unresolved `metric` alert, for devices that reported since it opened."""
    return {str(device): int(alert_id) for alert_id, device in conn.execute(_REPORTING_AGAIN, (metric,))}


def alert_opened_at(conn: psycopg.Connection, device_id: str, metric: str, opened_at: datetime) -> bool:
    """Whether an alert of this key opened at exactly `opened_at` exists (in any state)."""
    found = conn.execute(
        "SELECT 1 FROM alerts WHERE device_id = %s AND metric = %s AND opened_at = %s LIMIT 1",
        (device_id, metric, opened_at),
    ).fetchone()
    return found is not None


def node_devices(conn: psycopg.Connection, node: str) -> list[str]:
    """The known devices of a Sparkplug edge node: the node itself and every `<node>:<device>`."""
    rows = conn.execute(
        "SELECT device_id FROM devices WHERE device_id = %(n)s OR left(device_id, length(%(n)s) + 1) = %(n)s || ':'"
        " ORDER BY device_id",
        {"n": node},
    ).fetchall()
    return [str(r[0]) for r in rows]


def with_unresolved(conn: psycopg.Connection, device_ids: list[str], metric: str) -> set[str]:
    """Which of these devices have an unresolved `metric` alert (one query for a whole batch)."""
    rows = conn.execute(
        "SELECT device_id FROM alerts WHERE metric = %s AND state <> 'resolved' AND device_id = ANY(%s)",
        (metric, device_ids),
    ).fetchall()
    return {str(r[0]) for r in rows}
