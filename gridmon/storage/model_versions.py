"""The `model_versions` table: one row per trained artifact on disk, at most one `active`.

- `register_model` inserts the row of an artifact the retrain job wrote.
- `activate_model` / `list_models` are what the API calls (roll back or forward by id).
- `active_version` is the one cheap query per scan that tells the scan job's model handle
  (`gridmon.jobs.models.ActiveModel`) whether the active version changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger(__name__)

_ACTIVATION_LOCK = (0x67726D6E, 2)  # ("grmn", 2): serialises activations (one active version)
COLUMNS = (
    "id, trained_at, window_start, window_end, n_samples, features, threshold, params, metrics, status, "
    "artifact_path, note, activated_at"
)


def _utc(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """What a `model_versions` row says about a written artifact."""

    artifact_path: Path
    window: tuple[float, float]
    n_samples: int
    features: list[str]
    threshold: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    note: str | None = None


def register_model(conn: psycopg.Connection, record: VersionRecord) -> int:
    """Insert an inactive `model_versions` row for a written artifact; returns its id."""
    row = conn.execute(
        """INSERT INTO model_versions (window_start, window_end, n_samples, features, threshold, params, metrics,
                                       status, artifact_path, note)
           VALUES (%s, %s, %s, %s, %s, %s, %s, 'inactive', %s, %s) RETURNING id""",
        (
            _utc(record.window[0]),
            _utc(record.window[1]),
            record.n_samples,
            Jsonb(record.features),
            record.threshold,
            Jsonb(record.params),
            Jsonb(record.metrics),
            str(record.artifact_path),
            record.note,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def activate_model(conn: psycopg.Connection, model_id: int) -> dict[str, Any] | None:
    """Make `model_id` the active version (others inactive). None if there is no such version."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _ACTIVATION_LOCK)
    with conn.cursor(row_factory=dict_row) as cur:
        if cur.execute("SELECT id FROM model_versions WHERE id = %s FOR UPDATE", (model_id,)).fetchone() is None:
            return None
        # Two statements, not one CASE: the partial unique index is checked row by row.
        cur.execute("UPDATE model_versions SET status = 'inactive' WHERE status = 'active' AND id <> %s", (model_id,))
        row = cur.execute(
            f"""UPDATE model_versions SET status = 'active',
                       activated_at = CASE WHEN status = 'active' THEN activated_at ELSE now() END
                WHERE id = %s RETURNING {COLUMNS}""",
            (model_id,),
        ).fetchone()
    log.info("model version activated id=%s", model_id)
    return row


def list_models(conn: psycopg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Model versions, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM model_versions ORDER BY id DESC LIMIT %s", (limit,)).fetchall()


def active_version(conn: psycopg.Connection) -> tuple[int, str] | None:
    """(id, artifact_path) of the active version, or None."""
    row = conn.execute("SELECT id, artifact_path FROM model_versions WHERE status = 'active'").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def active_model_info(conn: psycopg.Connection) -> tuple[str, float] | None:
    """(id as text, trained_at epoch) of the active version, for the API's metrics; None if none."""
    row = conn.execute(
        """SELECT id::text, extract(epoch FROM trained_at) FROM model_versions WHERE status = 'active'
           ORDER BY trained_at DESC LIMIT 1"""
    ).fetchone()
    return (str(row[0]), float(row[1])) if row else None
