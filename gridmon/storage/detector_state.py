"""The `detector_state` table: each device's serialised streaming-detector state.

`load` fetches the states of a batch's devices in one query; `save` writes them back in one
statement (an upsert from arrays). Both run in the scan step's transaction, together with the
alerts and the watermark, so a step either commits everything or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg


@dataclass(frozen=True, slots=True)
class StoredState:
    """One device's row: the state bytes and the forest version its forest calibration is for."""

    state: bytes
    forest_version: int | None


def load(conn: psycopg.Connection, device_ids: Sequence[str]) -> dict[str, StoredState]:
    """The stored states of these devices (devices without one are absent), rows locked."""
    if not device_ids:
        return {}
    rows = conn.execute(
        "SELECT device_id, state, forest_version FROM detector_state WHERE device_id = ANY(%s) FOR UPDATE",
        (list(device_ids),),
    ).fetchall()
    return {str(d): StoredState(bytes(s), v) for d, s, v in rows}


def save(
    conn: psycopg.Connection,
    rows: Iterable[tuple[str, bytes, int | None, int, float | None]],
) -> int:
    """Upsert (device_id, state, forest_version, readings, last_ts epoch) rows; returns how many."""
    items = list(rows)
    if not items:
        return 0
    devices, states, versions, readings, last = zip(*items, strict=True)
    conn.execute(
        """INSERT INTO detector_state (device_id, state, forest_version, readings, last_ts, updated_at)
           SELECT d, s, v, r, to_timestamp(l), now()
           FROM unnest(%s::text[], %s::bytea[], %s::int[], %s::bigint[], %s::float8[]) AS t(d, s, v, r, l)
           ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state, forest_version = EXCLUDED.forest_version,
               readings = EXCLUDED.readings, last_ts = EXCLUDED.last_ts, updated_at = now()""",
        (list(devices), list(states), list(versions), list(readings), list(last)),
    )
    return len(items)


def load_one(conn: psycopg.Connection, device_id: str) -> StoredState | None:
    """One device's state without locking (the API draws the expected band from it)."""
    row = conn.execute("SELECT state, forest_version FROM detector_state WHERE device_id = %s", (device_id,)).fetchone()
    return StoredState(bytes(row[0]), row[1]) if row else None


def reset(conn: psycopg.Connection, device_ids: Sequence[str] | None = None) -> int:
    """Forget the states of these devices (all when None): they start learning afresh."""
    if device_ids is None:
        cur = conn.execute("DELETE FROM detector_state")
    else:
        cur = conn.execute("DELETE FROM detector_state WHERE device_id = ANY(%s)", (list(device_ids),))
    return max(cur.rowcount, 0)


def updated_at(conn: psycopg.Connection, device_id: str) -> datetime | None:
    row = conn.execute("SELECT updated_at FROM detector_state WHERE device_id = %s", (device_id,)).fetchone()
    return row[0].astimezone(UTC) if row else None
