"""Training tasks (queue `ml`): retrain the IsolationForest and activate the new version."""

from __future__ import annotations

from typing import Any

from gridmon.celery import app
from gridmon.jobs.retrain import retrain as run_retrain


@app.task(name="workers.training.retrain", acks_late=True, reject_on_worker_lost=True, soft_time_limit=1800)
def retrain(window_hours: float | None = None) -> dict[str, Any]:
    """Train on the last `window_hours` (default GRIDMON_RETRAIN_WINDOW_H) and activate the result.

    The result's `status` is `trained` (with `model_id`) or `skipped` (with `reason`; the
    previous version stays active). Not retried: the next beat tick retrains anyway.
    """
    return run_retrain(window_hours).to_dict()
