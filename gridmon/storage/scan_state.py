"""The `scan_state` table (one watermark per incremental scan) and the scan's safe upper bound.

`lock_watermark` takes the scan's row for the transaction (a second scan finds it locked and
skips); `safe_upper_bound` is the newest `ingested_at` below which every row is committed (the
reasoning is in `gridmon.jobs.scan`); `advance` moves the watermark when a step is done.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

_UPPER_BOUND = """
SELECT clock_timestamp() - make_interval(secs => %(lag)s),
       (SELECT min(xact_start) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
           AND backend_xid IS NOT NULL
           AND xact_start IS NOT NULL AND xact_start > clock_timestamp() - make_interval(secs => %(stuck)s)),
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
           AND backend_xid IS NOT NULL AND xact_start <= clock_timestamp() - make_interval(secs => %(stuck)s))
"""


def ensure_row(conn: psycopg.Connection, name: str, lookback_s: float, *, start: datetime | None = None) -> None:
    """Create a scan's row (at `start`, or `lookback_s` before now) unless it exists."""
    conn.execute(
        "INSERT INTO scan_state (name, watermark) VALUES (%s, coalesce(%s, now() - make_interval(secs => %s))) "
        "ON CONFLICT (name) DO NOTHING",
        (name, start, lookback_s),
    )


def lock_watermark(
    conn: psycopg.Connection, name: str, lookback_s: float, *, start: datetime | None = None
) -> datetime | None:
    """The watermark, with the scan's row locked for this transaction; None if another scan holds it.
    A scan seen for the first time starts at `start`, or `lookback_s` before now."""
    ensure_row(conn, name, lookback_s, start=start)
    row = conn.execute("SELECT watermark FROM scan_state WHERE name = %s FOR UPDATE SKIP LOCKED", (name,)).fetchone()
    return row[0] if row else None


def upper_bound_inputs(
    conn: psycopg.Connection, *, lag_s: float, stuck_s: float
) -> tuple[datetime, datetime | None, int]:
    """(now − lag, start of the oldest write transaction open for less than `stuck_s` or None,
    how many write transactions have been open longer than `stuck_s`)."""
    row = conn.execute(_UPPER_BOUND, {"lag": lag_s, "stuck": stuck_s}).fetchone()
    assert row is not None
    return row[0], row[1], int(row[2])


def advance(conn: psycopg.Connection, name: str, watermark: datetime, readings: int) -> None:
    """Move the scan's watermark and add the readings this step scored to its count."""
    conn.execute(
        "UPDATE scan_state SET watermark = %s, updated_at = now(), readings = readings + %s WHERE name = %s",
        (watermark, readings, name),
    )


def watermark_of(conn: psycopg.Connection, name: str) -> datetime | None:
    """A scan's watermark without locking it (None when it has no row)."""
    row = conn.execute("SELECT watermark FROM scan_state WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def list_watermarks(conn: psycopg.Connection, prefix: str) -> list[tuple[str, datetime, int]]:
    """(name, watermark, readings) of the scans whose name starts with `prefix`."""
    rows = conn.execute(
        "SELECT name, watermark, readings FROM scan_state WHERE name LIKE %s ORDER BY name", (prefix + "%",)
    ).fetchall()
    return [(str(n), w, int(r)) for n, w, r in rows]


def shard_counts(conn: psycopg.Connection, prefix: str) -> set[int]:
    """The shard counts N of the `<prefix>/<shard>of<N>` rows that exist."""
    rows = conn.execute(
        "SELECT DISTINCT split_part(name, 'of', 2)::int FROM scan_state WHERE name ~ %s",
        (f"^{prefix}/[0-9]+of[0-9]+$",),
    ).fetchall()
    return {int(n) for (n,) in rows}


def lock_all(conn: psycopg.Connection, prefix: str) -> list[tuple[str, datetime]]:
    """Lock every `<prefix>/…` row (waiting for running scans) and return (name, watermark)."""
    rows = conn.execute(
        "SELECT name, watermark FROM scan_state WHERE name LIKE %s ORDER BY name FOR UPDATE", (prefix + "/%",)
    ).fetchall()
    return [(str(n), w) for n, w in rows]


def replace_rows(conn: psycopg.Connection, prefix: str, names: list[str], watermark: datetime) -> None:
    """Delete every `<prefix>/…` row and insert `names` at `watermark` (caller's transaction)."""
    conn.execute("DELETE FROM scan_state WHERE name LIKE %s", (prefix + "/%",))
    conn.execute(
        "INSERT INTO scan_state (name, watermark) SELECT n, %s FROM unnest(%s::text[]) AS n", (watermark, names)
    )


def lag_seconds(conn: psycopg.Connection, prefix: str) -> float | None:
    """How far the slowest shard's watermark (`<prefix>/…` rows) trails the clock, in seconds;
    None before the first scan."""
    row = conn.execute(
        "SELECT extract(epoch FROM now() - min(watermark))::float8 FROM scan_state WHERE name LIKE %s",
        (prefix + "/%",),
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None
