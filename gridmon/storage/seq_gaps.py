"""`reading_gaps`: which readings never arrived, from the devices' own sequence numbers.

A device that sends `seq` (0, 1, 2, … per reading, wrapping at 2^32) lets ingest see what the
broker dropped. Readings are ordered by time per device; the step between two consecutive stored
readings counts missing readings by the rule in `gridmon.domain.seq` (restarts, repeats and
readings without seq count nothing). The count is stored on the later reading's row in
`reading_gaps` (only where it is above 0) — except the step into the first reading of a device's
latest in-order batch, which stays on the device's row (`devices.seg_first_missing`, the *pending*
step) until a batch that is not in the hole comes: that is the step two batches committed in the
wrong order count and fill a moment apart, and on the row it costs no gap row written and deleted.
Readers count both through the view `reading_gaps_all`.

Three ways, one result (`gridmon.domain.seq` has them). After the batch's readings moved,
`account_batch` upserts its `devices` rows, and the same statement takes per device:
- in order, the common case: its steps follow from the batch and the device's head
  (`devices.last_seq`). No read of `sensor_readings`; only gaps are written.
- in the hole (behind the device's latest in-order batch, where nothing else is stored: what two
  workers committing consecutive batches in the wrong order leave): its steps run from the reading
  before the hole (`devices.seg_pre_seq`) through the batch, and the step into the hole's end
  (`devices.seg_first_ts`, `seg_first_seq`) replaces the pending one. No read of
  `sensor_readings` either.
- everything else (late or redelivered readings, duplicates, a batch reaching over stored
  readings): the gaps are *recomputed from the stored readings* over the span the device's batch
  touched — from the device's last stored reading before the batch to its first stored reading
  after it — replacing what `reading_gaps` held for that span, and the head is read back.
A redelivered batch, duplicates, readings arriving out of order or late (filling a gap) therefore
all end up with the counts the complete table implies.

Who counts what: the statement counts every step that needs only the device's row — the step of
a device with one reading in the batch (the usual batch: one reading per device) and the pending
step — and returns only the devices left over: those going the third way, and those with
several readings in the batch, whose steps `plan_batch` counts in Python. For the usual batch one
short row comes back.

Concurrent batches of one device are serialised by its `devices` row, locked by the upsert until
commit: the moves of two workers run in parallel, their accounting in turn, and each batch's
accounting sees what the batches committed before it stored (READ COMMITTED: every statement
after the lock reads what committed before; the upsert's statement reads the pending step from
the locked row and writes gaps only by `INSERT … ON CONFLICT`, which meets rows committed while it
waited for the lock). A batch whose readings were moved while another, committing first,
accounted without them either lies in the hole that one left (then the step across it is
replaced) or is recomputed from the table. A batch without seq moves its readings and then locks
the same rows (and closes the hole, as it may have stored a reading in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from gridmon.domain.readings import SEQ_MODULUS
from gridmon.domain.seq import ELSEWHERE, IN_HOLE, IN_ORDER, WRAP_WINDOW, Head, plan_batch, repeated_devices


def _missing(previous: str, current: str) -> str:
    """The rule of `gridmon.domain.seq.missing_between` as SQL, over two seq expressions."""
    return (
        f"CASE WHEN {previous} IS NULL OR {current} IS NULL THEN 0"
        f" WHEN {current} > {previous} THEN {current} - {previous} - 1"
        f" WHEN {previous} >= {SEQ_MODULUS - WRAP_WINDOW} AND {current} < {WRAP_WINDOW}"
        f" THEN {current} + {SEQ_MODULUS} - {previous} - 1 ELSE 0 END"
    )


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
    SELECT device_id, ts, {_missing("p", "s")} AS missing
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


# The batch per device: its first and last reading's time (epoch s) and seq. With several readings
# of a device, `min`/`max` of arrays order by time, then seq (float8 holds any seq exactly). The
# usual batch has one reading per device and needs no aggregate (measured: dropping the GROUP BY
# took about 0.8 ms off the upsert of a 1,000-device batch, most of what it cost over the plain one).
_BATCH_SEVERAL = """
SELECT device_id, min(ts_epoch) AS lo, max(ts_epoch) AS hi,
       (min(ARRAY[ts_epoch, seq]))[2]::bigint AS first_seq, (max(ARRAY[ts_epoch, seq]))[2]::bigint AS last_seq
FROM gridmon_staging GROUP BY device_id
"""
_BATCH_ONE_EACH = (
    "SELECT device_id, ts_epoch AS lo, ts_epoch AS hi, seq AS first_seq, seq AS last_seq FROM gridmon_staging"
)
# The `devices` upsert of a batch with seq (`gridmon.storage.readings` has the plain one), after its
# readings moved. Per device it keeps the head (`last_seen`, `last_seq`: the seq of the batch's last
# reading) and the hole (`gridmon.domain.seq`): `seg_pre_*`, the reading stored just before the
# latest in-order batch, and `seg_first_*`, that batch's first reading. An in-order batch opens a
# new hole behind it; a batch inside the hole narrows it (its last reading becomes `seg_pre`); any
# other batch closes it (`seg_pre_ts` NULL; the other columns then mean nothing): the device is
# recomputed, and has no hole until its next in-order batch. A device the batch creates gets a
# hole reaching back to -infinity.
# `seg_first_missing` is the step into `seg_first_ts`, counted but kept on the row instead of in
# `reading_gaps` (the pending step; readers count both through the view `reading_gaps_all`): an
# in-order batch sets it from the head's seq, a batch in the hole replaces it (the batch's last
# reading now precedes the hole's end; usually 0, the gap counted a moment ago filled), any other
# batch sets it to 0. The step it held is then written to `reading_gaps` by `_account` (in order,
# or elsewhere: a recompute may rewrite it) — so two batches committed in the wrong order write
# and delete no gap row. A batch without seq leaves it as it is.
# For RETURNING (PostgreSQL 15 returns only new values) it records which way the batch goes
# (`prior_way`, compared as stored timestamps), the seq its steps start from (`prior_seq`) and the
# pending step it found (`prior_first_ts`, `prior_missing`); `prior_way` is NULL for a device the
# batch created. What it returns stays in the statement (`_account`).
# Ordered by device_id so concurrent batches lock device rows in the same order (no deadlock).
_IN_ORDER = "EXCLUDED.first_seen > d.last_seen"
_IN_HOLE = "EXCLUDED.first_seen > d.seg_pre_ts AND EXCLUDED.last_seen < d.seg_first_ts"


def _upsert_devices(batch: str) -> str:
    return f"""
INSERT INTO devices AS d (device_id, first_seen, last_seen, last_seq, seg_pre_ts, seg_first_ts, seg_first_seq)
SELECT device_id, to_timestamp(lo), to_timestamp(hi), last_seq, '-infinity', to_timestamp(lo), first_seq
FROM ({batch}) b ORDER BY device_id
ON CONFLICT (device_id) DO UPDATE
SET first_seen = LEAST(d.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen),
    last_seq = CASE WHEN EXCLUDED.last_seen > d.last_seen THEN EXCLUDED.last_seq ELSE d.last_seq END,
    prior_way = CASE WHEN {_IN_ORDER} THEN {IN_ORDER} WHEN {_IN_HOLE} THEN {IN_HOLE} ELSE {ELSEWHERE} END,
    prior_seq = CASE WHEN {_IN_ORDER} THEN d.last_seq ELSE d.seg_pre_seq END,
    prior_first_ts = d.seg_first_ts,
    prior_missing = d.seg_first_missing,
    seg_pre_ts = CASE WHEN {_IN_ORDER} THEN d.last_seen WHEN {_IN_HOLE} THEN EXCLUDED.last_seen END,
    seg_pre_seq = CASE WHEN {_IN_ORDER} THEN d.last_seq ELSE EXCLUDED.last_seq END,
    seg_first_ts = CASE WHEN {_IN_ORDER} THEN EXCLUDED.first_seen ELSE d.seg_first_ts END,
    seg_first_seq = CASE WHEN {_IN_ORDER} THEN EXCLUDED.seg_first_seq ELSE d.seg_first_seq END,
    seg_first_missing = CASE WHEN {_IN_ORDER} THEN {_missing("d.last_seq", "EXCLUDED.seg_first_seq")}
                             WHEN {_IN_HOLE} THEN {_missing("EXCLUDED.last_seq", "d.seg_first_seq")} ELSE 0 END
RETURNING device_id, prior_way AS way, prior_seq, seg_pre_ts, seg_pre_seq, seg_first_seq, seg_first_missing,
          prior_first_ts, prior_missing
"""


# The upsert and the steps it settles, in one statement (`%(several)s`: the devices with more than
# one reading in the batch, usually none). In order, the step into the batch's first reading is the
# new pending step (whatever the device's readings), and the one pending before is written out;
# a device in the hole with one reading: the step into it, from `prior_seq` (the old `seg_pre`),
# is written, and the pending step is replaced; elsewhere, the pending step is written out (the
# recompute that follows may rewrite it). Keys differ (a written-out step lies at or before the
# device's head, a step in the hole before the hole's end; one device per key), so one INSERT
# takes them all.
# Returns: how the missing count changed, and the devices left over, each with its way, the seq
# its steps start from (in order: the batch's first reading, whose step is the pending one) and
# its pending step now; arrays are NULL if empty.
def _account(batch: str) -> str:
    return f"""
WITH up AS ({_upsert_devices(batch)}),
single AS (
    SELECT device_id, seg_pre_ts AS ts, {_missing("prior_seq", "seg_pre_seq")} AS missing
    FROM up WHERE way = {IN_HOLE} AND device_id <> ALL(%(several)s::text[])
),
stored AS (
    INSERT INTO reading_gaps (device_id, ts, missing)
    SELECT device_id, ts, missing FROM single WHERE missing > 0
    UNION ALL
    SELECT device_id, prior_first_ts, prior_missing FROM up WHERE way IN ({IN_ORDER}, {ELSEWHERE}) AND prior_missing > 0
    ON CONFLICT (device_id, ts) DO UPDATE SET missing = EXCLUDED.missing
)
SELECT (SELECT coalesce(sum(missing), 0) FROM single)
       + (SELECT coalesce(sum(seg_first_missing - CASE way WHEN {IN_HOLE} THEN prior_missing ELSE 0 END), 0)
          FROM up WHERE way IN ({IN_ORDER}, {IN_HOLE})),
       array_agg(device_id), array_agg(way), array_agg(CASE way WHEN {IN_ORDER} THEN seg_first_seq ELSE prior_seq END),
       array_agg(seg_first_missing)
FROM up WHERE way = {ELSEWHERE} OR device_id = ANY(%(several)s::text[])
"""


_ACCOUNT_ONE_EACH = _account(_BATCH_ONE_EACH)  # a batch with one reading per device
_ACCOUNT_SEVERAL = _account(_BATCH_SEVERAL)
_STORE_GAPS = """
INSERT INTO reading_gaps (device_id, ts, missing)
SELECT d, to_timestamp(t), m FROM unnest(%s::text[], %s::float8[], %s::bigint[]) AS g(d, t, m)
ON CONFLICT (device_id, ts) DO UPDATE SET missing = EXCLUDED.missing
"""
# After a recompute: the head is what the table says (the batch's own last reading may have been a
# duplicate whose stored twin carries another seq). The hole is closed: which readings a recompute
# met is not worth keeping track of. A pending step is dropped (the recompute wrote every step of
# its span, the hole's end included, to `reading_gaps`); `account_batch` takes it off the count.
_READ_BACK_HEADS = """
UPDATE devices d SET last_seq = (
    SELECT r.seq FROM sensor_readings r WHERE r.device_id = d.device_id ORDER BY r.ts DESC LIMIT 1
), seg_pre_ts = NULL, seg_first_missing = 0
WHERE d.device_id = ANY(%s)
"""


def account_batch(cur: psycopg.Cursor, rows: Sequence[Sequence[Any]]) -> int:
    """Upsert the devices of the staged batch `rows` (`gridmon_staging`, its readings already moved
    into `sensor_readings`) and bring `reading_gaps` up to date for it, in the caller's transaction.
    Each device's row stays locked until commit, so batches of one device are accounted one at a
    time, each seeing what those committed before it stored. Returns how the missing count changed
    (negative when late readings filled gaps; for the metrics only)."""
    several = repeated_devices(rows)
    row = cur.execute(_ACCOUNT_SEVERAL if several else _ACCOUNT_ONE_EACH, {"several": several}).fetchone()
    assert row is not None  # an aggregate without GROUP BY: always one row
    change, devices, ways, seqs, pending = row
    change = int(change)
    if devices:
        heads: dict[str, Head] = {d: (d, way, seq) for d, way, seq in zip(devices, ways, seqs, strict=True)}
        plan = plan_batch([r for r in rows if r[0] in heads], heads)
        if plan.gaps:
            change += sum(missing for _device, _ts, missing in plan.gaps)
            columns = [list(column) for column in zip(*plan.gaps, strict=True)]
            cur.execute(_STORE_GAPS, columns)
        if plan.recompute:
            change += recompute_gaps(cur, plan.recompute)
            cur.execute(_READ_BACK_HEADS, (plan.recompute,))
            dropped = set(plan.recompute)
            change -= sum(int(n) for d, n in zip(devices, pending, strict=True) if d in dropped)
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
    query = "SELECT coalesce(sum(missing), 0) FROM reading_gaps_all WHERE device_id = %s"
    row = conn.execute(query, (device_id,)).fetchone()
    return int(row[0]) if row else 0


def missing_total(conn: psycopg.Connection) -> int:
    """Readings missing over the whole fleet."""
    row = conn.execute("SELECT coalesce(sum(missing), 0) FROM reading_gaps_all").fetchone()
    return int(row[0]) if row else 0


def missing_by_device(conn: psycopg.Connection, device_ids: list[str]) -> dict[str, int]:
    """Missing readings of each of `device_ids` that has any."""
    rows = conn.execute(
        "SELECT device_id, sum(missing) FROM reading_gaps_all WHERE device_id = ANY(%s) GROUP BY device_id",
        (device_ids,),
    ).fetchall()
    return {str(d): int(n) for d, n in rows}


def top_missing(conn: psycopg.Connection, limit: int) -> list[tuple[str, int]]:
    """The `limit` devices with the most missing readings, most first."""
    rows = conn.execute(
        "SELECT device_id, sum(missing) AS n FROM reading_gaps_all GROUP BY device_id"
        " ORDER BY n DESC, device_id LIMIT %s",
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
             lost AS (SELECT date_trunc('hour', ts) AS hour, sum(missing) AS n FROM reading_gaps_all
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
        FROM (SELECT device_id, sum(missing) AS n FROM reading_gaps_all WHERE ts >= %(s)s GROUP BY device_id) g
        WHERE g.n >= %(m)s ORDER BY g.device_id
        """,
        {"s": since, "m": min_missing},
    ).fetchall()
    return [(str(d), int(received), int(missing)) for d, received, missing in rows]


_ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")  # the readings API's bucket alignment
_MISSING_TAIL = """ AS b, sum(missing) FROM reading_gaps_all
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
