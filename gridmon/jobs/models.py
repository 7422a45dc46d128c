"""The forest artifacts on disk, on the jobs' side of `model_versions`.

- `write_artifact` saves a trained `ForestSet` atomically (temp file, then rename) for the
  retrain job.
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

import joblib
import psycopg

from gridmon.detection.stream.forest import ForestSet
from gridmon.storage.model_versions import active_version

log = logging.getLogger(__name__)


def write_artifact(forests: ForestSet, model_dir: Path) -> Path:
    """Save `forests` under `model_dir` with a unique name; a reader never sees a partial file."""
    model_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = (model_dir / f"forests-{stamp}-{uuid.uuid4().hex[:8]}.joblib").resolve()
    partial = final.with_suffix(".joblib.partial")
    joblib.dump(forests, partial, compress=3)
    os.replace(partial, final)
    return final


def load_artifact(path: str | Path) -> ForestSet:
    loaded = joblib.load(path)
    if not isinstance(loaded, ForestSet):
        raise TypeError(f"{path} is not a forest set")
    return loaded


class ActiveModel:
    """The active forest set of this process, reloaded when the active version changes."""

    def __init__(self) -> None:
        self.model_id: int | None = None
        self.model: ForestSet | None = None
        self._loaded: tuple[int, str] | None = None
        self._failed: tuple[int, str] | None = None

    def get(self, conn: psycopg.Connection) -> tuple[int | None, ForestSet | None]:
        """(id, forests) of the active version; (None, None) when there is none or it cannot load."""
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
            model = load_artifact(path)
        except (OSError, TypeError, ValueError, EOFError, ModuleNotFoundError, AttributeError) as exc:
            # Without its artifact the version is unusable here; detection goes on without the
            # forest rather than stopping, and says so once.
            log.error("active model cannot be loaded id=%s path=%s error=%s", model_id, path, exc)
            self._failed = current
            return None, None
        log.info("active model loaded id=%s path=%s groups=%d", model_id, path, len(model.forests))
        self.model_id, self.model, self._loaded, self._failed = model_id, model, current, None
        return self.model_id, self.model
