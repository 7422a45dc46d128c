"""Scan tasks (queue `scan`): the incremental anomaly scan and the outbox drain, each one job call."""

from __future__ import annotations

from typing import Any

from gridmon.celery import app
from gridmon.jobs.publish import publish
from gridmon.jobs.scan import run_scan


@app.task(name="workers.scanning.scan", acks_late=True, reject_on_worker_lost=True)
def scan() -> dict[str, Any]:
    """Score what was ingested since the last scan, update alerts, check silent devices, publish.

    Not retried: a failed scan changed nothing (each step is one transaction) and the next
    beat tick starts where it stopped.
    """
    return run_scan().to_dict()


@app.task(name="workers.scanning.publish_alerts", acks_late=True, ignore_result=True)
def publish_alerts() -> int:
    """Drain the outbox to Redis now (the scan and the prediction run also do this every run)."""
    return publish().published
