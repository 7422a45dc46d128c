"""Pipeline outages for the scan: store the heartbeat gaps the bridges queued, and tell whether
the pipeline is down right now.

The bridges queue gaps in Redis (`gridmon.heartbeat.mark_alive`) because they never touch the
database; the scan, which does, moves them into `pipeline_outages` (`gridmon.storage.outages`),
where the staleness check and any other analysis read them. A gap is removed from Redis only
after its transaction committed; storing one twice is harmless (unique per source and start).
"""

from __future__ import annotations

import logging

from gridmon import heartbeat
from gridmon.storage import db, outages

log = logging.getLogger(__name__)


def store_queued_gaps() -> int:
    """Move the queued heartbeat gaps into the table; returns how many were new."""
    gaps, read = heartbeat.queued_gaps()
    if not read:
        return 0
    with db.connection() as conn:
        new = sum(outages.record_gap(conn, source, start, end) for source, start, end in gaps)
    heartbeat.drop_gaps(read)
    if new:
        log.info("pipeline outages recorded from the bridge heartbeat count=%d", new)
    return new


def down_since(now: float, gap_s: float) -> float | None:
    """Since when no bridge has been listening (if for more than `gap_s`), else None."""
    return heartbeat.down_since(now, gap_s)
