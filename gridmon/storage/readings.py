"""The `sensor_readings` table: the bulk write path, and the counts the benchmark and status line read.

A batch is COPYed into a per-connection temporary staging table, then moved into
`sensor_readings` with `INSERT … ON CONFLICT DO NOTHING`: a redelivered batch (worker killed,
broker redelivery, MQTT resend) is stored once, and the statement's row count tells inserted
from duplicate readings. `ingested_at` is the time the row was written (clock_timestamp(), a few
milliseconds before the batch commits), not the transaction start.

Rows may carry a seventh item, the device's `seq`: it is stored, and the batch's devices and gaps
are accounted by `gridmon.storage.seq_gaps` in the same transaction. Batches without any `seq`
skip that step and copy the six columns they always did.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from gridmon.domain.readings import DeadLetter
from gridmon.storage.dead_letters import write_dead_letters
from gridmon.storage.seq_gaps import account_batch

log = logging.getLogger(__name__)

# ON COMMIT DELETE ROWS: the staging table survives on the pooled connection, emptied by commit.
_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS gridmon_staging (
    device_id text, ts_epoch double precision, voltage double precision,
    current double precision, temperature double precision, extra jsonb, seq bigint
) ON COMMIT DELETE ROWS
"""
_COPY_STAGING = "COPY gridmon_staging (device_id, ts_epoch, voltage, current, temperature, extra) FROM STDIN"
_COPY_STAGING_SEQ = "COPY gridmon_staging (device_id, ts_epoch, voltage, current, temperature, extra, seq) FROM STDIN"
_MOVE = """
INSERT INTO sensor_readings (device_id, ts, voltage, current, temperature, extra, seq, ingested_at)
SELECT device_id, to_timestamp(ts_epoch), voltage, current, temperature, extra, seq, clock_timestamp()
FROM gridmon_staging
ON CONFLICT (device_id, ts) DO NOTHING
"""
# Ordered by device_id so concurrent batches lock device rows in the same order (no deadlock).
# A batch without seq that moves `last_seen` leaves the device's latest reading without one:
# `last_seq` (`gridmon.storage.seq_gaps`, the batches with seq) becomes NULL; and it may have
# stored a reading in the device's hole, which is closed (`seg_pre_ts` NULL).
_UPSERT_DEVICES = """
INSERT INTO devices AS d (device_id, first_seen, last_seen)
SELECT device_id, to_timestamp(min(ts_epoch)), to_timestamp(max(ts_epoch))
FROM gridmon_staging GROUP BY device_id ORDER BY device_id
ON CONFLICT (device_id) DO UPDATE
SET first_seen = LEAST(d.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen),
    last_seq = CASE WHEN EXCLUDED.last_seen > d.last_seen THEN NULL ELSE d.last_seq END,
    seg_pre_ts = NULL
WHERE EXCLUDED.last_seen > d.last_seen OR EXCLUDED.first_seen < d.first_seen OR d.seg_pre_ts IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch did to the table."""

    received: int
    inserted: int
    duplicates: int
    dead_letters: int
    missing_change: int = 0  # how the batch changed the readings missing by seq (`seq_gaps`)


def _escape(text: str) -> str:
    # COPY text format: backslash, tab, newline and carriage return must be escaped.
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


_PLAIN_DEVICE_IDS = re.compile(r"[A-Za-z0-9_.:-]*")


def _copy_text(rows: Sequence[Sequence[Any]]) -> bytes:
    """Readings as COPY text.

    Fast path (the common case): rows without `extra` whose device ids use only the validated
    characters are written by orjson in one call and reshaped into COPY lines — ids then contain
    no quote, comma, bracket, backslash or whitespace, so the reshaping is exact; orjson prints
    floats in shortest round-trip form, which PostgreSQL reads back to the same double. Other
    rows take the per-row path with COPY escaping.
    """
    plain = [r for r in rows if r[5] is None]
    if plain and _PLAIN_DEVICE_IDS.fullmatch("".join(r[0] for r in plain)):
        rest = [r for r in rows if r[5] is not None] if len(plain) < len(rows) else []
        return _copy_plain(plain) + _copy_escaped(rest)
    return _copy_escaped(rows)


def _copy_text_seq(rows: Sequence[Sequence[Any]]) -> bytes:
    """Readings with a seventh item, `seq` (an int or None), as COPY text (seven columns).

    Fast path as `_copy_text`'s when every row has no `extra`, an int `seq` and a plain id:
    `["id",ts,v,i,t,null,seq]` → the seven columns tab-separated, `extra` as NULL. `,null,` can
    only be the `extra` of a row (quoted ids hold no comma)."""
    rows = [r if len(r) == 7 else (*r[:6], None) for r in rows]
    if all(r[5] is None and type(r[6]) is int for r in rows) and _PLAIN_DEVICE_IDS.fullmatch(
        "".join(r[0] for r in rows)
    ):
        body = orjson.dumps(rows, default=_tuple_as_list)[2:-2]
        body = body.replace(b"],[", b"\n").replace(b",null,", b",\\N,").replace(b'"', b"").replace(b",", b"\t")
        return body + b"\n"
    lines = []
    for device_id, ts, voltage, current, temperature, extra, seq in rows:
        extra_text = _escape(orjson.dumps(extra).decode()) if extra else "\\N"
        seq_text = "\\N" if seq is None else str(int(seq))
        lines.append(
            f"{_escape(device_id)}\t{ts!r}\t{voltage!r}\t{current!r}\t{temperature!r}\t{extra_text}\t{seq_text}\n"
        )
    return "".join(lines).encode()


def _tuple_as_list(obj: object) -> list[Any]:
    # orjson encodes lists and plain tuples itself; NamedTuples (e.g. `Reading`) come here.
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _copy_plain(rows: Sequence[Sequence[Any]]) -> bytes:
    # [["id",ts,v,i,t,null],["id",…,null]] → id\tts\tv\ti\tt\t\N lines. Ids hold no comma, so
    # ",null],[" only ever marks the end of a row.
    body = orjson.dumps(rows, default=_tuple_as_list)[2:-7]
    body = body.replace(b",null],[", b"\n").replace(b'"', b"").replace(b",", b"\t").replace(b"\n", b"\t\\N\n")
    return body + b"\t\\N\n"


def _copy_escaped(rows: Sequence[Sequence[Any]]) -> bytes:
    lines = []
    for device_id, ts, voltage, current, temperature, extra in rows:
        extra_text = _escape(orjson.dumps(extra).decode()) if extra else "\\N"
        lines.append(f"{_escape(device_id)}\t{ts!r}\t{voltage!r}\t{current!r}\t{temperature!r}\t{extra_text}\n")
    return "".join(lines).encode()


def write_readings(
    conn: psycopg.Connection, readings: Sequence[Sequence[Any]], dead: Iterable[DeadLetter] = ()
) -> WriteResult:
    """Store a batch (rows of device_id, ts epoch, voltage, current, temperature, extra and
    optionally seq) and its dead letters in the caller's transaction; with any seq in the batch,
    account the gaps it touched."""
    inserted = 0
    missing_change = 0
    with_seq = any(len(r) > 6 and r[6] is not None for r in readings)
    with conn.cursor() as cur:
        if readings:
            cur.execute(_CREATE_STAGING)
            if with_seq:
                with cur.copy(_COPY_STAGING_SEQ) as copy:
                    copy.write(_copy_text_seq(readings))
            else:
                with cur.copy(_COPY_STAGING) as copy:
                    trailing = any(len(r) > 6 for r in readings)  # seq items, all None
                    copy.write(_copy_text([r[:6] for r in readings] if trailing else readings))
            cur.execute(_MOVE)
            inserted = max(cur.rowcount, 0)
            # The devices upsert locks the batch's device rows until commit: the accounting of
            # one device's batches runs in turn (`gridmon.storage.seq_gaps`, whose upsert it is).
            if with_seq:
                missing_change = account_batch(cur, readings)
            else:
                cur.execute(_UPSERT_DEVICES)
        n_dead = write_dead_letters(cur, dead)
    return WriteResult(len(readings), inserted, len(readings) - inserted, n_dead, missing_change)


def count_readings(conn: psycopg.Connection) -> int:
    """Rows in `sensor_readings` (the benchmark's and `gridmon up`'s progress count)."""
    row = conn.execute("SELECT count(*) FROM sensor_readings").fetchone()
    return int(row[0]) if row else 0


def truncate_ingest_tables(conn: psycopg.Connection) -> None:
    """Empty readings, devices and dead letters (the benchmark's private database only)."""
    conn.execute("TRUNCATE sensor_readings, devices, dead_letters")


def ingest_latency_ms(conn: psycopg.Connection) -> tuple[float, float]:
    """Median and 99th percentile of ingested_at − ts over every stored reading, in ms (NaN if none)."""
    row = conn.execute(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lat),
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY lat)
           FROM (SELECT extract(epoch FROM ingested_at - ts) * 1000 AS lat FROM sensor_readings) s"""
    ).fetchone()
    return (float(row[0]), float(row[1])) if row and row[0] is not None else (float("nan"), float("nan"))


def time_plain_copy(conn: psycopg.Connection, rows: Sequence[Sequence[Any]]) -> float:
    """Seconds one COPY of `rows` into a scratch table shaped like `sensor_readings` takes (commits;
    the scratch table is dropped with the transaction). The benchmark's lower bound for a write."""
    data = _copy_text(rows)
    conn.execute("CREATE TEMP TABLE bench_copy (LIKE sensor_readings INCLUDING DEFAULTS) ON COMMIT DROP")
    conn.execute("ALTER TABLE bench_copy ALTER COLUMN ts TYPE double precision USING 0")
    started = time.perf_counter()
    with conn.cursor().copy("COPY bench_copy (device_id, ts, voltage, current, temperature, extra) FROM STDIN") as copy:
        copy.write(data)
    conn.commit()
    return time.perf_counter() - started


def copy_plain_readings(conn: psycopg.Connection, rows: Iterable[tuple[str, datetime, float, float, float]]) -> None:
    """COPY (device_id, ts, voltage, current, temperature) rows straight into `sensor_readings`
    (benchmarks that need a backlog fast; no dedupe, no devices rows)."""
    with (
        conn.cursor() as cur,
        cur.copy("COPY sensor_readings (device_id, ts, voltage, current, temperature) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def reset_scan_tables(conn: psycopg.Connection, *, readings: bool) -> None:
    """Empty the scan's own tables (watermarks, detector states, alerts), and the readings too."""
    tables = "detector_state, scan_state, alerts" + (", sensor_readings, devices" if readings else "")
    conn.execute(f"TRUNCATE {tables} CASCADE")


def scan_totals(conn: psycopg.Connection) -> tuple[int, int, int | None, int | None]:
    """(readings counted by all scans, devices with a detector state, min and max readings per state)."""
    row = conn.execute(
        "SELECT (SELECT coalesce(sum(readings), 0) FROM scan_state), count(*), min(readings), max(readings) "
        "FROM detector_state"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), row[2], row[3]
