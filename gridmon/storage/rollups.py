"""History rollups: per-device 1-minute and 1-hour buckets, read the same way on both databases.

`readings_1m` and `readings_1h` (migration 0011_rollups) hold per bucket `n`, and per metric
`<m>_sum`, `<m>_min`, `<m>_max`, `<m>_last`, plus `last_ts`. On TimescaleDB they are continuous
aggregates with real-time aggregation. On plain PostgreSQL they are tables that `refresh_plain`
keeps: it recomputes every bucket touched by a reading ingested since its watermark (late readings
included), with upserts, so running it twice changes nothing. Reads take the rollup's buckets
before its watermark and the raw rows after it, on both databases alike, so both give the same
answers on the same data.

A read over [start, end) takes whole rollup buckets for the interior and raw rows for the partial
buckets at both edges; statement texts are fixed (the rollup relation is one of two constants).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

log = logging.getLogger(__name__)

METRICS = ("voltage", "current", "temperature")
ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
"""Buckets are aligned to UTC midnight (time_bucket's default alignment for these widths)."""

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
SOURCES: tuple[tuple[timedelta, str], ...] = ((HOUR, "readings_1h"), (MINUTE, "readings_1m"))
"""Rollups from coarsest to finest: (bucket width, relation)."""

RAW_UP_TO = timedelta(hours=1)
"""Ranges up to this long are aggregated from the raw rows (few rows, exact, no edge handling)."""
MIN_SOURCE_BUCKETS = 4
"""A rollup is used only when the range spans at least this many of its buckets."""
BATCH_DEVICES = 50
"""Devices recomputed per statement by the plain refresh."""


def _floor(t: datetime, width: timedelta) -> datetime:
    return t - (t - ORIGIN) % width


def _ceil(t: datetime, width: timedelta) -> datetime:
    floor = _floor(t, width)
    return floor if floor == t else floor + width


def choose_source(width: timedelta, span: timedelta) -> tuple[timedelta, str] | None:
    """The coarsest rollup whose bucket divides `width` and that the range spans enough of, or
    None when raw rows should be read (short range or a width no rollup divides)."""
    if span <= RAW_UP_TO:
        return None
    for size, relation in SOURCES:
        if width % size == timedelta(0) and span >= MIN_SOURCE_BUCKETS * size:
            return size, relation
    return None


def is_timescale(conn: psycopg.Connection) -> bool:
    """Whether the rollups are continuous aggregates (TimescaleDB) rather than tables."""
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def _partials(relation: str) -> str:
    """Rollup rows in [lo, hi) and raw rows in [start, lo) ∪ [hi, end), as partial aggregates."""
    stats = ", ".join(f"{m}_sum, {m}_min, {m}_max" for m in METRICS)
    raw = ", ".join(f"{m}, {m}, {m}" for m in METRICS)
    return f"""
    SELECT bucket AS t, n, {stats} FROM {relation}
    WHERE device_id = %(device)s AND bucket >= %(lo)s AND bucket < %(hi)s
    UNION ALL
    SELECT ts, 1, {raw} FROM sensor_readings
    WHERE device_id = %(device)s
      AND ((ts >= %(start)s AND ts < %(lo)s) OR (ts >= %(hi)s AND ts < %(end)s))
    """


def _combine() -> str:
    stats = ", ".join(f"sum({m}_sum) / sum(n)::float8, min({m}_min), max({m}_max)" for m in METRICS)
    return f"sum(n)::bigint, {stats}"


_BUCKETED = {
    relation: f"""
    SELECT date_bin(%(width)s, t, %(origin)s) AS b, {_combine()}
    FROM ({_partials(relation)}) parts GROUP BY b ORDER BY b
    """
    for _, relation in SOURCES
}
_TOTAL = {relation: f"SELECT {_combine()} FROM ({_partials(relation)}) parts" for _, relation in SOURCES}
_RAW_BUCKETED = f"""
SELECT date_bin(%(width)s, ts, %(origin)s) AS b, count(*),
       {", ".join(f"avg({m}), min({m}), max({m})" for m in METRICS)}
FROM sensor_readings WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
GROUP BY b ORDER BY b
"""
_RAW_TOTAL = f"""
SELECT count(*), {", ".join(f"avg({m}), min({m}), max({m})" for m in METRICS)}
FROM sensor_readings WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
"""
_WATERMARK = "SELECT watermark FROM rollup_state WHERE name = 'readings'"
# A continuous aggregate's watermark: the end of its materialized buckets (the function its own
# real-time view uses); before the first refresh it is the lowest timestamp, read as NULL here.
_CAGG_WATERMARK = """
SELECT CASE WHEN w < '1970-01-01' THEN NULL ELSE w END FROM (
    SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id)) AS w
    FROM _timescaledb_catalog.continuous_agg WHERE user_view_schema = 'public' AND user_view_name = %s
) cagg
"""


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a read over [start, end) takes its rows: whole buckets of `relation` in [lo, hi) and
    raw rows for the rest; `relation` None means raw rows only."""

    start: datetime
    end: datetime
    relation: str | None
    lo: datetime
    hi: datetime

    @property
    def raw_span(self) -> timedelta:
        """How much of the range is read from the raw rows."""
        if self.relation is None:
            return self.end - self.start
        return (self.lo - self.start) + (self.end - self.hi)


def plan(conn: psycopg.Connection, start: datetime, end: datetime, width: timedelta, *, timescale: bool) -> Plan:
    """The plan for buckets of `width` over [start, end): the rollup (`choose_source`), and the
    whole rollup buckets in the range that it holds: those before its watermark (on TimescaleDB
    the continuous aggregate's, on plain PostgreSQL the refresh task's). Later readings are read
    raw — what TimescaleDB's real-time aggregation does — so they count against the row budget,
    and both databases take the same path."""
    source = choose_source(width, end - start)
    if source is None:
        return Plan(start, end, None, start, start)
    size, relation = source
    lo, hi = _ceil(start, size), _floor(end, size)
    row = conn.execute(_CAGG_WATERMARK, (relation,)).fetchone() if timescale else conn.execute(_WATERMARK).fetchone()
    watermark = row[0] if row else None
    hi = min(hi, _floor(watermark, size)) if watermark is not None else lo
    if hi <= lo:  # no whole bucket: all of [start, end) is read raw (lo == hi == start)
        return Plan(start, end, relation, start, start)
    return Plan(start, end, relation, lo, hi)


def _params(device_id: str, p: Plan) -> dict[str, Any]:
    return {"device": device_id, "start": p.start, "end": p.end, "lo": p.lo, "hi": p.hi, "origin": ORIGIN}


def bucketed(conn: psycopg.Connection, device_id: str, p: Plan, width: timedelta) -> list[tuple[Any, ...]]:
    """Per non-empty bucket of `width` (a multiple of the plan's rollup bucket): (bucket start,
    count, then avg/min/max of voltage, current, temperature), oldest first."""
    params = {**_params(device_id, p), "width": width}
    query = _RAW_BUCKETED if p.relation is None else _BUCKETED[p.relation]
    return conn.execute(query, params).fetchall()


def totals(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, *, timescale: bool
) -> tuple[Any, ...]:
    """(count, then avg/min/max of voltage, current, temperature) over [start, end)."""
    p = plan(conn, start, end, HOUR, timescale=timescale)  # one bucket over the range: any rollup divides it
    query = _RAW_TOTAL if p.relation is None else _TOTAL[p.relation]
    row = conn.execute(query, _params(device_id, p)).fetchone()
    assert row is not None  # an aggregate without GROUP BY always gives one row
    return (row[0] or 0, *row[1:])


# --- keeping the plain-PostgreSQL tables -----------------------------------------------------

# The state row comes back (watermark NULL: recompute everything) if the table was emptied.
_ENSURE = "INSERT INTO rollup_state (name, watermark) VALUES ('readings', NULL) ON CONFLICT (name) DO NOTHING"
_CLAIM = "SELECT watermark, now() - %(lag)s FROM rollup_state WHERE name = 'readings' FOR UPDATE"
# Touched 1-minute buckets of readings ingested in (after, upto], merged per device into runs of
# consecutive minutes (gaps and islands), so the recompute reads each run with one index range.
_TOUCHED = """
CREATE TEMP TABLE rollup_touched ON COMMIT DROP AS
WITH t AS (
    SELECT DISTINCT device_id, date_bin(INTERVAL '1 minute', ts, %(origin)s) AS b FROM sensor_readings
    WHERE ingested_at > COALESCE(%(after)s::timestamptz, '-infinity') AND ingested_at <= %(upto)s
), g AS (
    SELECT device_id, b, b - row_number() OVER (PARTITION BY device_id ORDER BY b) * INTERVAL '1 minute' AS grp
    FROM t
)
SELECT device_id, min(b) AS lo, max(b) + INTERVAL '1 minute' AS hi FROM g GROUP BY device_id, grp
"""


def _upsert(table: str, select: str) -> str:
    columns = ["n"] + [f"{m}_{s}" for m in METRICS for s in ("sum", "min", "max", "last")] + ["last_ts"]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    return f"""
    INSERT INTO {table} (device_id, bucket, {", ".join(columns)})
    {select}
    ON CONFLICT (device_id, bucket) DO UPDATE SET {updates}
    """


_MINUTES = _upsert(
    "readings_1m",
    f"""
    SELECT r.device_id, date_bin(INTERVAL '1 minute', r.ts, %(origin)s) AS bucket, count(*),
           {", ".join(f"sum({m}), min({m}), max({m}), (array_agg({m} ORDER BY r.ts DESC))[1]" for m in METRICS)},
           max(r.ts)
    FROM rollup_touched t
    JOIN sensor_readings r ON r.device_id = t.device_id AND r.ts >= t.lo AND r.ts < t.hi
    WHERE t.device_id = ANY(%(devices)s)
    GROUP BY r.device_id, bucket
    """,
)
_HOURS = _upsert(
    "readings_1h",
    f"""
    SELECT m.device_id, h.hour, sum(m.n),
           {
        ", ".join(
            f"sum(m.{c}_sum), min(m.{c}_min), max(m.{c}_max), (array_agg(m.{c}_last ORDER BY m.last_ts DESC))[1]"
            for c in METRICS
        )
    },
           max(m.last_ts)
    FROM (
        SELECT DISTINCT t.device_id, hour
        FROM rollup_touched t,
             generate_series(date_bin(INTERVAL '1 hour', t.lo, %(origin)s), t.hi - INTERVAL '1 microsecond',
                             INTERVAL '1 hour') AS hour
        WHERE t.device_id = ANY(%(devices)s)
    ) h
    JOIN readings_1m m ON m.device_id = h.device_id AND m.bucket >= h.hour AND m.bucket < h.hour + INTERVAL '1 hour'
    GROUP BY m.device_id, h.hour
    """,
)
_ADVANCE = "UPDATE rollup_state SET watermark = %(upto)s WHERE name = 'readings'"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one plain refresh did."""

    watermark: datetime | None
    minutes: int
    hours: int


def refresh_plain(conn: psycopg.Connection, lag: timedelta) -> RefreshResult:
    """Recompute the 1-minute and 1-hour buckets touched by readings ingested since the watermark
    and up to `now() - lag`, then move the watermark there. Runs in the caller's transaction (the
    row lock on `rollup_state` serializes concurrent runs). `lag` leaves room for ingest
    transactions that stamped `ingested_at` but had not committed yet."""
    with conn.transaction():
        conn.execute(_ENSURE)
        row = conn.execute(_CLAIM, {"lag": lag}).fetchone()
        assert row is not None  # ensured just above
        after, upto = row
        if after is not None and upto <= after:
            return RefreshResult(after, 0, 0)
        params: dict[str, Any] = {"after": after, "upto": upto, "origin": ORIGIN}
        conn.execute(_TOUCHED, params)
        devices = [r[0] for r in conn.execute("SELECT DISTINCT device_id FROM rollup_touched ORDER BY 1")]
        minutes = hours = 0
        # In batches of devices: a large backlog (the first run on a long history) becomes several
        # statements, each well inside the job's statement timeout.
        for at in range(0, len(devices), BATCH_DEVICES):
            params["devices"] = devices[at : at + BATCH_DEVICES]
            minutes += conn.execute(_MINUTES, params).rowcount
            hours += conn.execute(_HOURS, params).rowcount
        conn.execute(_ADVANCE, params)
        conn.execute("DROP TABLE rollup_touched")
    return RefreshResult(upto, minutes, hours)


def refresh_timescale(conn: psycopg.Connection) -> None:
    """Materialize both continuous aggregates over all time (what the refresh policies do over
    their window). `conn` must be in autocommit: TimescaleDB refuses this inside a transaction."""
    for relation in ("readings_1m", "readings_1h"):
        conn.execute(f"CALL refresh_continuous_aggregate('{relation}', NULL, NULL)")


def materialize(conn: psycopg.Connection) -> None:
    """Bring the rollups up to date with every committed reading, on either database (tests and
    the benchmark; in service the refresh policies or the periodic task do this)."""
    if is_timescale(conn):
        refresh_timescale(conn)
    else:
        refresh_plain(conn, timedelta(0))
