"""The `dead_letters` table: payloads validation rejected, kept with their exact bytes — up to a
prefix (GRIDMON_DEAD_LETTER_PAYLOAD_BYTES), with the size and SHA-256 of the whole payload.

Written by COPY on the ingest path (in the batch's transaction); listed, replayed and deleted by
the admin API; counted by reason for the API's metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from gridmon.domain.readings import DeadLetter

_COPY_DEAD = (
    "COPY dead_letters (received_at, topic, payload, reason, detail, payload_size, payload_sha256) FROM STDIN"
)
_LIST = """
SELECT id, received_at, topic, reason, detail, payload_size, substring(payload FROM 1 FOR %(preview)s)
FROM dead_letters
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
  AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(n)s
"""


def write_dead_letters(cur: psycopg.Cursor, dead: Iterable[DeadLetter]) -> int:
    """COPY dead letters (built by `gridmon.domain.readings.dead_letter`, so already bounded);
    returns how many."""
    count = 0
    items = list(dead)
    if not items:
        return 0
    with cur.copy(_COPY_DEAD) as copy:
        for item in items:
            copy.write_row(
                (
                    _epoch_to_text(item.received_at),
                    item.topic,
                    item.payload,
                    item.reason,
                    item.detail,
                    item.size,
                    item.sha256,
                )
            )
            count += 1
    return count


def _epoch_to_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def list_dead_letters(
    conn: psycopg.Connection,
    *,
    reason: str | None,
    since: datetime | None,
    before: int | None,
    limit: int,
    preview_bytes: int,
) -> list[tuple[Any, ...]]:
    """Rows (id, received_at, topic, reason, detail, payload size, payload preview), newest first."""
    params = {"reason": reason, "since": since, "before": before, "n": limit, "preview": preview_bytes}
    return conn.execute(_LIST, params).fetchall()


def lock_dead_letter(conn: psycopg.Connection, dead_letter_id: int) -> tuple[str, bytes, int] | None:
    """(topic, stored payload, size of the payload as received) of one dead letter, row-locked
    until commit; None if there is no such row. The stored payload is shorter than the size when
    only its prefix was kept."""
    row = conn.execute(
        "SELECT topic, payload, payload_size FROM dead_letters WHERE id = %s FOR UPDATE", (dead_letter_id,)
    ).fetchone()
    return (str(row[0]), bytes(row[1]), int(row[2])) if row else None


def delete_dead_letter(conn: psycopg.Connection, dead_letter_id: int) -> None:
    conn.execute("DELETE FROM dead_letters WHERE id = %s", (dead_letter_id,))


def count_by_reason(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """(reason, stored dead letters) pairs."""
    return [(str(r), int(n)) for r, n in conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY reason")]
