"""The forest artifacts on disk, on the jobs' side of `model_versions`.

- `write_artifact` saves a trained forest atomically (temp file, then rename) for the retrain job.
- `ActiveModel` is the per-process handle the scan job uses: one cheap query per scan
  (`gridmon.storage.model_versions.active_version`) tells whether the active id changed, and
  only then is the new artifact loaded, so workers pick up a retrain (or an operator's rollback)
  without a restart.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from gridmon.detection.forest import TrainedForest, load_model, save_model
from gridmon.storage.model_versions import active_version

log = logging.getLogger(__name__)


def write_artifact(model: TrainedForest, model_dir: Path) -> Path:
    """Save `model` under `model_dir` with a unique name; a reader never sees a partial file."""
    model_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = (model_dir / f"forest-{stamp}-{uuid.uuid4().hex[:8]}.joblib").resolve()
    partial = final.with_suffix(".joblib.partial")
    save_model(model, partial)
    os.replace(partial, final)
    return final


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
