"""Maintenance tasks: predict failure dates and maintenance risk (periodically and on demand).

Thin: the work is `gridmon.jobs.predict.run_predictions`. acks_late + reject_on_worker_lost
rerun a prediction whose worker died (a rerun only adds one more history row; notifications are
decided under a per-device lock, so a level change is announced once). Only transient database
errors are retried; a Redis outage is not an error here (the outbox keeps notifications). The
periodic run expires before the next one (beat entry), so a backlog runs once.
"""

from __future__ import annotations

import time
from typing import Any

from celery import group

from gridmon.celery import app
from gridmon.config import get_settings
from gridmon.domain.shards import round_order
from gridmon.jobs.predict import run_predictions
from gridmon.jobs.rollups import refresh_rollups as refresh_rollups_job
from gridmon.storage.db import TRANSIENT_DB_ERRORS

# Limits come from the settings the worker starts with (beat runs the task every predict_interval_s).
PREDICT_INTERVAL_S = get_settings().predict_interval_s
ROLLUP_INTERVAL_S = get_settings().rollup_interval_s
# A prediction (one device, or one shard): rerun if its worker died, retried on transient
# database errors, and stopped before the next periodic run is due.
PREDICT_TASK: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_DB_ERRORS,
    "retry_backoff": 5,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
    "soft_time_limit": PREDICT_INTERVAL_S * 0.8,
    "time_limit": PREDICT_INTERVAL_S * 0.9,
}


@app.task(name="workers.maintenance.predict", **PREDICT_TASK)
def predict(device_id: str | None = None) -> dict[str, int | str | None]:
    """Predict for one device (`device_id`) or for every device seen within the lookback window."""
    return run_predictions(device_id).as_dict()


@app.task(name="workers.maintenance.predict_all", acks_late=True, ignore_result=True)
def predict_all() -> dict[str, int]:
    """Beat's entry: one `predict_shard` per scan shard, so maintenance workers share the fleet."""
    shards = get_settings().scan_shards
    order = round_order(shards, int(time.time() // PREDICT_INTERVAL_S))
    group(predict_shard.s(s).set(expires=PREDICT_INTERVAL_S) for s in order).apply_async()
    return {"shards": shards}


@app.task(name="workers.maintenance.predict_shard", **PREDICT_TASK)
def predict_shard(shard: int) -> dict[str, int | str | None]:
    """Predict for the devices of one shard (of GRIDMON_SCAN_SHARDS)."""
    return run_predictions(shard=(shard, get_settings().scan_shards)).as_dict()


@app.task(
    name="workers.maintenance.refresh_rollups",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_DB_ERRORS,
    retry_backoff=5,
    retry_backoff_max=60,
    max_retries=3,
    ignore_result=True,
)
def refresh_rollups() -> dict[str, int | str | None]:
    """Beat's entry: bring the plain-PostgreSQL history rollups up to date (idempotent, so a
    redelivered or overlapping run is harmless; runs serialize on a row lock)."""
    return refresh_rollups_job()
