"""The `pipeline_outages` table: intervals in which gridmon itself was not listening.

Two kinds (migration 0009): a planned stop of `gridmon up` (opened when it stops, closed when it
starts again) and a gap in the bridges' heartbeat (recorded closed, once the heartbeat is back).
A device that is silent only inside such an interval is not at fault.

`outages_between(start, end)` is the read side for every analysis: the intervals overlapping
[start, end], clipped to it, overlapping ones merged, an open one running to `end`. The
staleness check (`gridmon.alerts.stale`) uses it; a detector that compares a reading with the
ones before it can use it the same way, to treat the gap as missing data rather than a change.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

PLANNED_STOP = "planned_stop"
HEARTBEAT_GAP = "heartbeat_gap"

Interval = tuple[float, float]


def record_gap(conn: psycopg.Connection, source: str, start: float, end: float) -> bool:
    """A closed heartbeat gap of `source` (epoch seconds); False if it was recorded before."""
    cur = conn.execute(
        "INSERT INTO pipeline_outages (source, reason, started_at, ended_at)"
        " VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s)) ON CONFLICT (source, started_at) DO NOTHING",
        (source, HEARTBEAT_GAP, start, max(start, end)),
    )
    return cur.rowcount > 0


def begin_stop(conn: psycopg.Connection, source: str, at: float) -> None:
    """A planned stop of `source` begins at `at` (open until `end_stops`)."""
    conn.execute(
        "INSERT INTO pipeline_outages (source, reason, started_at) VALUES (%s, %s, to_timestamp(%s))"
        " ON CONFLICT (source, started_at) DO NOTHING",
        (source, PLANNED_STOP, at),
    )


def end_stops(conn: psycopg.Connection, source: str, at: float) -> int:
    """Close the open planned stops of `source` at `at`; returns how many were open."""
    cur = conn.execute(
        "UPDATE pipeline_outages SET ended_at = greatest(started_at, to_timestamp(%s))"
        " WHERE source = %s AND reason = %s AND ended_at IS NULL",
        (at, source, PLANNED_STOP),
    )
    return max(cur.rowcount, 0)


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of the intervals (empty ones dropped)."""
    merged: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[1] > i[0]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def outages_between(conn: psycopg.Connection, start: float, end: float) -> list[Interval]:
    """Outage intervals overlapping [start, end] (epoch seconds), clipped and merged; an outage
    still open runs to `end`."""
    rows = conn.execute(
        "SELECT started_at, ended_at FROM pipeline_outages"
        " WHERE started_at < to_timestamp(%(end)s) AND (ended_at IS NULL OR ended_at > to_timestamp(%(start)s))",
        {"start": start, "end": end},
    ).fetchall()
    return merge([(max(_epoch(lo), start), min(_epoch(hi) if hi is not None else end, end)) for lo, hi in rows])


def list_outages(conn: psycopg.Connection, limit: int = 100) -> list[tuple[str, str, datetime, datetime | None]]:
    """The newest outages: (source, reason, started_at, ended_at)."""
    rows = conn.execute(
        "SELECT source, reason, started_at, ended_at FROM pipeline_outages ORDER BY started_at DESC LIMIT %s", (limit,)
    ).fetchall()
    return [(str(s), str(r), lo, hi) for s, r, lo, hi in rows]


def _epoch(value: datetime) -> float:
    return value.timestamp()
