"""`reading_gaps`: which readings never arrived, from the devices' own sequence numbers.

A device that sends `seq` (0, 1, 2, … per reading, wrapping at 2^32) lets ingest see what the
broker dropped. Readings are ordered by time per device; the step between two consecutive stored
readings counts missing readings by the rule in `gridmon.domain.seq` (restarts, repeats and
readings without seq count nothing). The count is stored on the later reading's row in
`reading_gaps` (only where it is above 0).

Two ways, one result. The batch first upserts its `devices` rows (`lock_devices`, before its
readings move), which returns each device's head; after the move, `account_batch` takes per device:
- the common case, a device's readings arriving in order: its batch lies wholly after everything
  stored for it, and its steps follow from the batch and the device's head (`devices.last_seq`,
  the seq of its latest stored reading). No read of `sensor_readings`; only gaps are written.
- everything else (late or redelivered readings, duplicates, a batch reaching back before
  `last_seen`): the gaps are *recomputed from the stored readings* over the span the device's
  batch touched — from the device's last stored reading before the batch to its first stored
  reading after it — replacing what `reading_gaps` held for that span, and the head is read back.
A redelivered batch, duplicates, readings arriving out of order or late (filling a gap) therefore
all end up with the counts the complete table implies.

Concurrent batches of one device are serialised by its `devices` row (locked by the upsert until
commit): the later one sees the earlier one's readings and head. Two workers may still commit a
device's consecutive batches in the wrong order: the later batch, going first, counts a gap across
readings not stored yet; the earlier one then finds `last_seen` past its first reading and
recomputes up to the first stored reading after it, which removes that gap again (the metrics see
it as found, then filled). A batch without seq moves its readings before it locks; the two orders
could only deadlock on one reading sent both with and without seq, and PostgreSQL would abort one
of them (a transient error: the ingest task retries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from gridmon.domain.readings import SEQ_MODULUS
from gridmon.domain.seq import WRAP_WINDOW, Head, plan_batch

# One statement per batch (one round trip, no temporary table). For each device to recompute,
# the span runs from the batch's first reading (`lo`) to the device's first stored
# reading after the batch (`hi`, or the batch's last); the stored readings of the span, preceded
# by the device's last stored reading before it, give every step whose later reading lies in the
# span. Steps with readings missing are upserted into reading_gaps, steps without are deleted from
# it (disjoint keys, so one statement can do both); gaps keyed inside the span are exactly these
# steps, since a gap is keyed at a stored reading. Returns how the missing count changed.
_RECOMPUTE = f"""
WITH span AS (
    SELECT s.device_id, s.lo,
           coalesce((SELECT r.ts FROM sensor_readings r WHERE r.device_id = s.device_id AND r.ts > s.hi
                     ORDER BY r.ts LIMIT 1), s.hi) AS hi
    FROM (SELECT device_id, to_timestamp(min(ts_epoch)) AS lo, to_timestamp(max(ts_epoch)) AS hi
          FROM gridmon_staging WHERE device_id = ANY(%(devices)s) GROUP BY device_id) s
),
steps AS (
    SELECT device_id, ts,
           CASE WHEN p IS NULL OR s IS NULL THEN 0
                WHEN s > p THEN s - p - 1
                WHEN p >= {SEQ_MODULUS - WRAP_WINDOW} AND s < {WRAP_WINDOW} THEN s + {SEQ_MODULUS} - p - 1
                ELSE 0 END AS missing
    FROM (SELECT b.device_id, b.lo, r.ts, r.seq AS s,
                 lag(r.seq) OVER (PARTITION BY b.device_id ORDER BY r.ts) AS p
          FROM span b
          -- LATERAL: index scans per device (a join over sensor_readings would read all of it)
          CROSS JOIN LATERAL (
              (SELECT ts, seq FROM sensor_readings r WHERE r.device_id = b.device_id AND r.ts < b.lo
               ORDER BY r.ts DESC LIMIT 1)
              UNION ALL
              (SELECT ts, seq FROM sensor_readings r
               WHERE r.device_id = b.device_id AND r.ts >= b.lo AND r.ts <= b.hi)
          ) r) pairs
    WHERE ts >= lo
),
earlier AS (
    SELECT coalesce(sum(g.missing), 0) AS n FROM reading_gaps g
    JOIN span b ON g.device_id = b.device_id AND g.ts >= b.lo AND g.ts <= b.hi
),
kept AS (
    INSERT INTO reading_gaps (device_id, ts, missing) SELECT device_id, ts, missing FROM steps WHERE missing > 0
    ON CONFLICT (device_id, ts) DO UPDATE SET missing = EXCLUDED.missing
    RETURNING missing
),
gone AS (
    DELETE FROM reading_gaps g USING steps n WHERE g.device_id = n.device_id AND g.ts = n.ts AND n.missing = 0
    RETURNING g.missing
)
SELECT (SELECT coalesce(sum(missing), 0) FROM kept) - (SELECT n FROM earlier), (SELECT count(*) FROM gone)
"""


# The `devices` upsert of a batch with seq (`gridmon.storage.readings` has the plain one). It also
# keeps `last_seq` when the batch moves `last_seen`: the seq of the staged reading at the batch's
# last time (`max` of arrays orders by time, then seq; float8 holds any seq exactly). And it
# records, for RETURNING, the device's `last_seq` before the batch (`prior_seq`) and whether the
# batch's first reading lies after the `last_seen` before it (`prior_in_order`, compared as stored
# timestamps); both are NULL for a device the batch created. A row the WHERE leaves alone (the
# batch lies inside its known span) is still locked, and not returned.
# Ordered by device_id so concurrent batches lock device rows in the same order (no deadlock).
_UPSERT_DEVICES = """
INSERT INTO devices AS d (device_id, first_seen, last_seen, last_seq)
SELECT device_id, to_timestamp(min(ts_epoch)), to_timestamp(max(ts_epoch)),
       (max(ARRAY[ts_epoch, seq]))[2]::bigint
FROM gridmon_staging GROUP BY device_id ORDER BY device_id
ON CONFLICT (device_id) DO UPDATE
SET first_seen = LEAST(d.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen),
    last_seq = CASE WHEN EXCLUDED.last_seen > d.last_seen THEN EXCLUDED.last_seq ELSE d.last_seq END,
    prior_seq = d.last_seq,
    prior_in_order = EXCLUDED.first_seen > d.last_seen
WHERE EXCLUDED.last_seen > d.last_seen OR EXCLUDED.first_seen < d.first_seen
RETURNING device_id, prior_in_order, prior_seq
"""
_STORE_GAPS = """
INSERT INTO reading_gaps (device_id, ts, missing)
SELECT d, to_timestamp(t), m FROM unnest(%s::text[], %s::float8[], %s::bigint[]) AS g(d, t, m)
ON CONFLICT (device_id, ts) DO UPDATE SET missing = EXCLUDED.missing
"""
# After a recompute: the head is what the table says (the batch's own last reading may have been a
# duplicate whose stored twin carries another seq).
_READ_BACK_HEADS = """
UPDATE devices d SET last_seq = (
    SELECT r.seq FROM sensor_readings r WHERE r.device_id = d.device_id ORDER BY r.ts DESC LIMIT 1
) WHERE d.device_id = ANY(%s)
"""


def lock_devices(cur: psycopg.Cursor) -> dict[str, Head]:
    """Upsert the devices of the staged batch (`gridmon_staging`), before its readings move: each
    device's row stays locked until commit, so batches of one device are accounted one at a time,
    each seeing the readings of those before it. Returns each moved device's head."""
    return {device: (in_order, seq) for device, in_order, seq in cur.execute(_UPSERT_DEVICES).fetchall()}


def account_batch(cur: psycopg.Cursor, rows: Sequence[Sequence[Any]], heads: dict[str, Head]) -> int:
    """Bring `reading_gaps` up to date for the batch `rows` (staged, devices locked by
    `lock_devices`, then moved into `sensor_readings`), in the caller's transaction. Returns how
    the missing count changed (negative when late readings filled gaps; for the metrics only)."""
    plan = plan_batch(rows, heads)
    change = 0
    if plan.gaps:
        devices, times, missing = (list(column) for column in zip(*plan.gaps, strict=True))
        cur.execute(_STORE_GAPS, (devices, times, missing))
        change += sum(missing)
    if plan.recompute:
        change += recompute_gaps(cur, plan.recompute)
        cur.execute(_READ_BACK_HEADS, (plan.recompute,))
    return change


def recompute_gaps(cur: psycopg.Cursor, devices: list[str]) -> int:
    """Recompute `reading_gaps` over the spans the staged batch (`gridmon_staging`) touched for
    `devices`, from the stored readings. Returns how the missing count changed."""
    # Never prepared: a cached generic plan does not see how few devices a span holds and joins
    # the whole of sensor_readings (measured: ~300 ms instead of ~25 ms per 1,000 devices).
    row = cur.execute(_RECOMPUTE, {"devices": devices}, prepare=False).fetchone()
    return int(row[0]) if row else 0


def missing_for_device(conn: psycopg.Connection, device_id: str) -> int:
    """Readings the device's sequence says never arrived, since it was first seen."""
    query = "SELECT coalesce(sum(missing), 0) FROM reading_gaps WHERE device_id = %s"
    row = conn.execute(query, (device_id,)).fetchone()
    return int(row[0]) if row else 0


def missing_total(conn: psycopg.Connection) -> int:
    """Readings missing over the whole fleet."""
    row = conn.execute("SELECT coalesce(sum(missing), 0) FROM reading_gaps").fetchone()
    return int(row[0]) if row else 0


def missing_by_device(conn: psycopg.Connection, device_ids: list[str]) -> dict[str, int]:
    """Missing readings of each of `device_ids` that has any."""
    rows = conn.execute(
        "SELECT device_id, sum(missing) FROM reading_gaps WHERE device_id = ANY(%s) GROUP BY device_id",
        (device_ids,),
    ).fetchall()
    return {str(d): int(n) for d, n in rows}


def top_missing(conn: psycopg.Connection, limit: int) -> list[tuple[str, int]]:
    """The `limit` devices with the most missing readings, most first."""
    rows = conn.execute(
        "SELECT device_id, sum(missing) AS n FROM reading_gaps GROUP BY device_id ORDER BY n DESC, device_id LIMIT %s",
        (limit,),
    ).fetchall()
    return [(str(d), int(n)) for d, n in rows]


@dataclass(frozen=True, slots=True)
class HourGaps:
    """One hour of a device: readings stored (with or without seq) and readings missing."""

    hour: datetime
    received: int
    missing: int


def hourly_gaps(conn: psycopg.Connection, device_id: str, start: datetime, end: datetime) -> list[HourGaps]:
    """Per hour in [start, end): readings received and missing (hours with neither are left out)."""
    rows = conn.execute(
        """
        WITH got AS (SELECT date_trunc('hour', ts) AS hour, count(*) AS n FROM sensor_readings
                     WHERE device_id = %(d)s AND ts >= %(s)s AND ts < %(e)s GROUP BY 1),
             lost AS (SELECT date_trunc('hour', ts) AS hour, sum(missing) AS n FROM reading_gaps
                      WHERE device_id = %(d)s AND ts >= %(s)s AND ts < %(e)s GROUP BY 1)
        SELECT coalesce(got.hour, lost.hour), coalesce(got.n, 0), coalesce(lost.n, 0)
        FROM got FULL JOIN lost ON got.hour = lost.hour ORDER BY 1
        """,
        {"d": device_id, "s": start, "e": end},
    ).fetchall()
    return [HourGaps(hour, int(received), int(missing)) for hour, received, missing in rows]


def window_shares(conn: psycopg.Connection, since: datetime, min_missing: int) -> list[tuple[str, int, int]]:
    """(device_id, received, missing) of every device with at least `min_missing` readings
    missing since `since` (the `data_gap` check)."""
    rows = conn.execute(
        """
        SELECT g.device_id,
               (SELECT count(*) FROM sensor_readings r WHERE r.device_id = g.device_id AND r.ts >= %(s)s),
               g.n
        FROM (SELECT device_id, sum(missing) AS n FROM reading_gaps WHERE ts >= %(s)s GROUP BY device_id) g
        WHERE g.n >= %(m)s ORDER BY g.device_id
        """,
        {"s": since, "m": min_missing},
    ).fetchall()
    return [(str(d), int(received), int(missing)) for d, received, missing in rows]


_ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")  # the readings API's bucket alignment
_MISSING_TAIL = """ AS b, sum(missing) FROM reading_gaps
WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s GROUP BY b
"""
_MISSING_TIMESCALE = "SELECT time_bucket(%(width)s, ts)" + _MISSING_TAIL
_MISSING_DATE_BIN = "SELECT date_bin(%(width)s, ts, %(origin)s)" + _MISSING_TAIL


def bucketed_missing(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, width: timedelta, *, timescale: bool
) -> dict[datetime, int]:
    """Missing readings per bucket (the buckets of `gridmon.storage.series.bucketed_readings`);
    a gap counts in the bucket of the reading that followed it."""
    query = _MISSING_TIMESCALE if timescale else _MISSING_DATE_BIN
    params = {"device": device_id, "start": start, "end": end, "width": width, "origin": _ORIGIN}
    return {b: int(n) for b, n in conn.execute(query, params).fetchall()}


ESTIMATE_WINDOW_S = 900.0
"""Devices without `seq`: the estimate looks at this long before the device's latest reading."""
_ESTIMATE = """
SELECT d.device_id, extract(epoch FROM d.last_seen - d.first_seen)::float8, g.usual, c.n
FROM devices d
CROSS JOIN LATERAL (
    SELECT r.seq IS NULL AS plain FROM sensor_readings r WHERE r.device_id = d.device_id ORDER BY r.ts DESC LIMIT 1
) latest
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS usual FROM (
        SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts))::float8 AS gap
        FROM (SELECT ts FROM sensor_readings r WHERE r.device_id = d.device_id ORDER BY ts DESC LIMIT 21) recent
    ) gaps WHERE gap IS NOT NULL
) g
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM sensor_readings r WHERE r.device_id = d.device_id
        AND r.ts > d.last_seen - make_interval(secs => %(w)s) AND r.ts <= d.last_seen LIMIT %(cap)s
    ) s
) c
WHERE d.device_id = ANY(%(ids)s) AND latest.plain AND g.usual > 0
"""


def estimate_missing(conn: psycopg.Connection, device_ids: list[str], cap: int = 20_000) -> dict[str, int]:
    """An interval-based estimate of missing readings for devices whose latest reading has no
    `seq`: over the ESTIMATE_WINDOW_S before the latest reading (or since first seen, if later),
    the readings the device's usual interval (median of its last 20 gaps) implies minus those
    stored. An estimate: a device that changed its cadence or pauses by design shows one."""
    rows = conn.execute(_ESTIMATE, {"ids": device_ids, "w": ESTIMATE_WINDOW_S, "cap": cap}).fetchall()
    out: dict[str, int] = {}
    for device_id, age_s, usual, received in rows:
        span = min(float(age_s), ESTIMATE_WINDOW_S)
        expected = span / float(usual) + (1 if float(age_s) < ESTIMATE_WINDOW_S else 0)
        out[str(device_id)] = max(0, round(expected - int(received)))
    return out
