"""Model versions: joblib artifacts on disk, one `model_versions` row each, at most one active.

- `register_model` writes the artifact (atomically: temp file, then rename) and its row.
- `activate_model` / `list_models` are what the API calls (roll back or forward by id).
- `ActiveModel` is the per-process handle the scan uses: one cheap query per scan tells whether
  the active id changed, and only then is the new artifact loaded, so workers pick up a retrain
  (or an operator's rollback) without a restart.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gridmon.detection.forest import TrainedForest, load_model, save_model

log = logging.getLogger(__name__)

_ACTIVATION_LOCK = (0x67726D6E, 2)  # ("grmn", 2): serialises activations (one active version)
COLUMNS = (
    "id, trained_at, window_start, window_end, n_samples, features, threshold, params, metrics, status, "
    "artifact_path, note, activated_at"
)


def _utc(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def write_artifact(model: TrainedForest, model_dir: Path) -> Path:
    """Save `model` under `model_dir` with a unique name; a reader never sees a partial file."""
    model_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = (model_dir / f"forest-{stamp}-{uuid.uuid4().hex[:8]}.joblib").resolve()
    partial = final.with_suffix(".joblib.partial")
    save_model(model, partial)
    os.replace(partial, final)
    return final


def register_model(
    conn: psycopg.Connection,
    model: TrainedForest,
    artifact_path: Path,
    *,
    window: tuple[float, float],
    note: str | None = None,
) -> int:
    """Insert an inactive `model_versions` row for a written artifact; returns its id."""
    row = conn.execute(
        """INSERT INTO model_versions (window_start, window_end, n_samples, features, threshold, params, metrics,
                                       status, artifact_path, note)
           VALUES (%s, %s, %s, %s, %s, %s, %s, 'inactive', %s, %s) RETURNING id""",
        (
            _utc(window[0]),
            _utc(window[1]),
            int(model.metrics.get("n_samples", 0)),
            Jsonb(list(model.feature_names)),
            float(model.threshold),
            Jsonb(model.params),
            Jsonb(model.metrics),
            str(artifact_path),
            note,
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


class ActiveModel:
    """The active forest of this process, reloaded when the active version changes."""

    def __init__(self) -> None:
        self.model_id: int | None = None
        self.model: TrainedForest | None = None
        self._loaded: tuple[int, str] | None = None
        self._failed: tuple[int, str] | None = None

    def get(self, conn: psycopg.Connection) -> tuple[int | None, TrainedForest | None]:
        """(id, model) of the active version; (None, None) when there is none or it cannot load."""
        current = active_version(conn)
        if current is None:
            self.model_id, self.model, self._loaded = None, None, None
            return None, None
        if current == self._loaded:
            return self.model_id, self.model
        if current == self._failed:
            return None, None
        model_id, path = current
        try:
            model = load_model(path)
        except (OSError, TypeError, ValueError, EOFError) as exc:
            # Without its artifact the version is unusable here; detection goes on without the
            # forest (safety and statistical) rather than stopping, and says so once.
            log.error("active model cannot be loaded id=%s path=%s error=%s", model_id, path, exc)
            self._failed = current
            return None, None
        log.info("active model loaded id=%s path=%s", model_id, path)
        self.model_id, self.model, self._loaded, self._failed = model_id, model, current, None
        return self.model_id, self.model
