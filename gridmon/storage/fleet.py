"""The fleet summary the dashboard's live stream sends every second: readings/s now, devices, open alerts.

One statement reads it all. "Readings per second now" is the number of rows whose `ingested_at`
falls in the last `window_s` seconds, divided by the window: `ingested_at` is the time each row
was written (`clock_timestamp()` in the ingest transaction), so a sliding window of a few seconds
smooths the batch edges while still reacting within seconds. The BRIN index on `ingested_at`
keeps the count to the newest block ranges. The same online/stale rule as the API's device list applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from gridmon.config import get_settings
from gridmon.domain.severity import SEVERITIES

WINDOW_S = 5.0
"""Width of the sliding window behind readings/s."""

_SUMMARY = """
SELECT now(),
       r.readings, r.devices_reporting,
       d.total, d.online,
       a.by_severity, a.acknowledged
FROM (
    SELECT count(*) AS readings, count(DISTINCT device_id) AS devices_reporting
    FROM sensor_readings WHERE ingested_at > now() - %(window)s
) r,
(
    SELECT count(*) AS total, count(*) FILTER (WHERE last_seen >= now() - %(stale)s) AS online FROM devices
) d,
(
    SELECT COALESCE(jsonb_object_agg(severity, n) FILTER (WHERE state = 'open'), '{}'::jsonb) AS by_severity,
           COALESCE(sum(n) FILTER (WHERE state = 'acknowledged'), 0) AS acknowledged
    FROM (
        SELECT state, severity, count(*) AS n FROM alerts
        WHERE state IN ('open', 'acknowledged') GROUP BY state, severity
    ) counted
) a
"""


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """What the dashboard's summary strip shows, at one moment."""

    at: datetime
    window_s: float
    readings: int
    devices_reporting: int
    devices_total: int
    devices_online: int
    open_alerts: dict[str, int]
    acknowledged_alerts: int

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.window_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the `summary` event."""
        return {
            "at": self.at.isoformat(),
            "window_s": self.window_s,
            "readings_in_window": self.readings,
            "readings_per_s": round(self.readings_per_s, 2),
            "devices_reporting": self.devices_reporting,
            "devices": {
                "total": self.devices_total,
                "online": self.devices_online,
                "stale": self.devices_total - self.devices_online,
            },
            "open_alerts": self.open_alerts,
            "acknowledged_alerts": self.acknowledged_alerts,
        }


def fetch_summary(
    conn: psycopg.Connection, window_s: float = WINDOW_S, stale_after_s: float | None = None
) -> FleetSummary:
    """Read the summary in one statement (`stale_after_s` defaults to GRIDMON_DEVICE_STALE_AFTER_S)."""
    stale = stale_after_s if stale_after_s is not None else get_settings().device_stale_after_s
    params = {"window": timedelta(seconds=window_s), "stale": timedelta(seconds=stale)}
    row = conn.execute(_SUMMARY, params).fetchone()
    assert row is not None  # aggregates over FROM-less subqueries always give one row
    at, readings, reporting, total, online, by_severity, acknowledged = row
    counts = {severity: int((by_severity or {}).get(severity, 0)) for severity in SEVERITIES}
    return FleetSummary(
        at=at,
        window_s=window_s,
        readings=int(readings),
        devices_reporting=int(reporting),
        devices_total=int(total),
        devices_online=int(online),
        open_alerts=counts,
        acknowledged_alerts=int(acknowledged),
    )
