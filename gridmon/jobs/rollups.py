"""Keep the history rollups current on plain PostgreSQL (one unit of work per beat tick).

On TimescaleDB the continuous aggregates' refresh policies do this inside the database, so the
job only reports that it had nothing to do. On plain PostgreSQL it recomputes the 1-minute and
1-hour buckets touched by the readings ingested since the last run (`gridmon.storage.rollups`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from gridmon.config import get_settings
from gridmon.storage import db, rollups

log = logging.getLogger(__name__)


def refresh_rollups(lag_s: float | None = None) -> dict[str, int | str | None]:
    """One refresh; `lag_s` defaults to GRIDMON_ROLLUP_LAG_S. Returns what it did."""
    lag = timedelta(seconds=get_settings().rollup_lag_s if lag_s is None else lag_s)
    with db.connection() as conn:
        if rollups.is_timescale(conn):
            return {"database": "timescaledb", "minutes": 0, "hours": 0, "watermark": None}
        result = rollups.refresh_plain(conn, lag)
    if result.minutes:
        log.info("rollups refreshed minutes=%d hours=%d watermark=%s", result.minutes, result.hours, result.watermark)
    watermark = result.watermark.isoformat() if result.watermark else None
    return {"database": "postgresql", "minutes": result.minutes, "hours": result.hours, "watermark": watermark}
