"""Scan tasks (queue `scan`): the incremental anomaly scan, staleness check and alert publishing."""

from __future__ import annotations

import logging
from typing import Any

from gridmon.celery import app
from gridmon.scan import run_scan

log = logging.getLogger(__name__)


@app.task(name="workers.scanning.scan", acks_late=True, reject_on_worker_lost=True)
def scan() -> dict[str, Any]:
    """Score what was ingested since the last scan, update alerts, check silent devices, publish.

    Not retried: a failed scan changed nothing (each step is one transaction) and the next
    beat tick starts where it stopped.
    """
    return run_scan().to_dict()


@app.task(name="workers.scanning.publish_alerts", acks_late=True, ignore_result=True)
def publish_alerts() -> int:
    """Drain the alert outbox to Redis now (the scan also does this every run)."""
    from gridmon.alerts.publisher import get_publisher

    return get_publisher().drain().published
