"""Frames of readings from `sensor_readings`, in the shape the detectors take.

A frame has columns device_id, ts (epoch s), voltage, current, temperature and one numeric column
per `extra` metric present (readings without it get NaN). Queries stream out as COPY CSV parsed
by pandas, with timestamps cast to float8 in SQL: no Python object per value is built (a million
readings load in about half the time of a cursor fetch).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import psycopg

CORE = ("voltage", "current", "temperature")
FRAME_COLUMNS = ("device_id", "ts", *CORE)
_SELECT = "SELECT device_id, extract(epoch FROM ts)::float8, voltage, current, temperature, extra FROM sensor_readings"


def rows_to_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Rows of (device_id, ts epoch, voltage, current, temperature, extra dict | None) → frame."""
    if not rows:
        empty = {c: pd.Series(dtype=float) for c in FRAME_COLUMNS[1:]}
        return pd.DataFrame({"device_id": pd.Series(dtype=object), **empty})
    columns = list(zip(*rows, strict=True))
    frame = pd.DataFrame(
        {
            "device_id": np.asarray(columns[0], dtype=object),
            **{name: np.asarray(columns[i], dtype=float) for i, name in enumerate(FRAME_COLUMNS[1:], start=1)},
        }
    )
    extras = columns[5] if len(columns) > 5 else ()
    if any(extras):
        expanded = pd.DataFrame.from_records([e or {} for e in extras]).apply(pd.to_numeric, errors="coerce")
        expanded = expanded.drop(columns=[c for c in expanded.columns if c in frame.columns])
        frame = pd.concat([frame, expanded.astype(float)], axis=1)
    return frame


def _expand_extra(frame: pd.DataFrame, extras: pd.Series) -> pd.DataFrame:
    present = extras.notna()
    if not present.any():
        return frame
    records = [orjson.loads(text) if isinstance(text, str) else {} for text in extras]
    expanded = pd.DataFrame.from_records(records, index=frame.index).apply(pd.to_numeric, errors="coerce")
    expanded = expanded.drop(columns=[c for c in expanded.columns if c in frame.columns])
    return pd.concat([frame, expanded.astype(float)], axis=1)


def _fetch(conn: psycopg.Connection, where: str, params: Sequence[Any] | dict[str, Any]) -> pd.DataFrame:
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(f"COPY ({_SELECT} {where}) TO STDOUT (FORMAT csv)", params) as copy:
        for chunk in copy:
            buffer.write(chunk)
    if not buffer.tell():
        return rows_to_frame([])
    buffer.seek(0)
    raw = pd.read_csv(
        buffer,
        header=None,
        names=[*FRAME_COLUMNS, "extra"],
        dtype={"device_id": object, "extra": object, **{c: float for c in FRAME_COLUMNS[1:]}},
        keep_default_na=False,
        na_values={"extra": [""]},
    )
    return _expand_extra(raw.drop(columns="extra"), raw["extra"])


def ingested_between(conn: psycopg.Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Readings whose `ingested_at` is in [start, end)."""
    return _fetch(conn, "WHERE ingested_at >= %s AND ingested_at < %s", (start, end))


# `= ANY(list)` rather than a range: PostgreSQL then descends the (bucket, ingested_at) index
# once per bucket with the ingested_at range as a bound, reading only the new rows.
_IN_BUCKETS = "gridmon_bucket(device_id) = ANY(%s::int[])"


def shard_ingested_between(
    conn: psycopg.Connection, start: datetime, end: datetime, buckets: tuple[int, int]
) -> pd.DataFrame:
    """Readings of the devices in buckets [low, high) whose `ingested_at` is in [start, end),
    in (device, ts) order (served by the (bucket, ingested_at) index)."""
    return _fetch(
        conn,
        f"WHERE {_IN_BUCKETS} AND ingested_at >= %s AND ingested_at < %s ORDER BY device_id, ts",
        (list(range(*buckets)), start, end),
    )


def shard_count_ingested_between(
    conn: psycopg.Connection, start: datetime, end: datetime, buckets: tuple[int, int]
) -> int:
    """How many readings of buckets [low, high) have `ingested_at` in [start, end)."""
    row = conn.execute(
        f"SELECT count(*) FROM sensor_readings WHERE {_IN_BUCKETS} AND ingested_at >= %s AND ingested_at < %s",
        (list(range(*buckets)), start, end),
    ).fetchone()
    return int(row[0]) if row else 0


def count_ingested_between(conn: psycopg.Connection, start: datetime, end: datetime) -> int:
    """How many readings have `ingested_at` in [start, end)."""
    row = conn.execute(
        "SELECT count(*) FROM sensor_readings WHERE ingested_at >= %s AND ingested_at < %s", (start, end)
    ).fetchone()
    return int(row[0]) if row else 0


def history_for(
    conn: psycopg.Connection, frame: pd.DataFrame, *, history_s: float, scanned: tuple[datetime, datetime]
) -> pd.DataFrame:
    """Readings of the frame's devices around its rows, for baselines, excluding the frame's rows.

    Per device: the `history_s` before its first new reading, and the `history_s` before its last
    one (two windows, so a late reading from yesterday does not pull in a whole day). Rows with
    `ingested_at` in `scanned` ([start, end)) are the frame itself and are left out.
    """
    if frame.empty or history_s <= 0:
        return rows_to_frame([])
    span = frame.groupby("device_id", sort=True)["ts"].agg(["min", "max"])
    return _fetch(
        conn,
        """r JOIN unnest(%(dev)s::text[], %(lo)s::float8[], %(hi)s::float8[]) AS d(device_id, lo, hi)
             USING (device_id)
           WHERE r.ts >= to_timestamp(d.lo - %(h)s) AND r.ts <= to_timestamp(d.hi)
             AND (r.ts < to_timestamp(d.lo) OR r.ts >= to_timestamp(d.hi - %(h)s))
             AND NOT (r.ingested_at >= %(start)s AND r.ingested_at < %(end)s)
           ORDER BY r.device_id, r.ts""",
        {
            "dev": list(span.index.astype(str)),
            "lo": span["min"].tolist(),
            "hi": span["max"].tolist(),
            "h": history_s,
            "start": scanned[0],
            "end": scanned[1],
        },
    )


def readings_between(conn: psycopg.Connection, start: datetime, end: datetime, limit: int) -> pd.DataFrame:
    """Readings with ts in [start, end): the most recent `limit` of them, in (device, ts) order."""
    row = conn.execute("SELECT count(*) FROM sensor_readings WHERE ts >= %s AND ts < %s", (start, end)).fetchone()
    # Sorting a day of readings only to keep all of them is wasted work: sort only to cut.
    cut = " ORDER BY ts DESC LIMIT %s" if row and row[0] > limit else ""
    params: tuple[Any, ...] = (start, end, limit) if cut else (start, end)
    frame = _fetch(conn, "WHERE ts >= %s AND ts < %s" + cut, params)
    return frame.sort_values(["device_id", "ts"], ignore_index=True)


def devices_between(
    conn: psycopg.Connection,
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
    limit: int,
    *,
    at_least: int = 0,
) -> pd.DataFrame:
    """Readings of these devices with ts in [start, end), reaching further back for a device
    with fewer than `at_least` readings there (its last `at_least` before `end`), the most recent
    `limit` of them in all, in (device, ts) order: what a retrain replays."""
    frame = _fetch(
        conn,
        "AS s JOIN ("
        " SELECT d AS wanted, LEAST(%s, COALESCE(("
        "  SELECT r.ts FROM sensor_readings r WHERE r.device_id = d AND r.ts < %s"
        "  ORDER BY r.ts DESC OFFSET %s LIMIT 1), '-infinity'::timestamptz)) AS since"
        " FROM unnest(%s::text[]) AS d"
        ") b ON s.device_id = b.wanted WHERE s.ts >= b.since AND s.ts < %s ORDER BY s.ts DESC LIMIT %s",
        (start, end, max(at_least - 1, 0), list(device_ids), end, limit),
    )
    return frame.sort_values(["device_id", "ts"], ignore_index=True)
