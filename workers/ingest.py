"""Ingest tasks: store a bridge batch (the work is `gridmon.jobs.ingest.store_batch`).

acks_late + reject_on_worker_lost: a batch whose worker dies mid-write goes back to the queue and
is written again; the primary key makes the second write a no-op for rows already committed.
Only transient database errors are retried (with backoff, without limit: dropping a batch
would lose readings); a batch the database refuses as data is dead-lettered whole by the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Task

from gridmon import tracing
from gridmon.celery import app
from gridmon.jobs import ingest
from gridmon.storage.db import TRANSIENT_DB_ERRORS


@app.task(
    bind=True,
    name="workers.ingest.ingest_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_DB_ERRORS,
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=None,
    ignore_result=True,
)
def ingest_batch(
    self: Task,
    readings: Sequence[Sequence[Any]],
    dead: Sequence[Sequence[Any]] | None = None,
    status: Sequence[Sequence[Any]] | None = None,
) -> dict[str, int]:
    """Store one micro-batch of readings (and the bridge's dead letters and Sparkplug status
    events) in one transaction."""
    headers = tracing.headers_from_request(self.request)
    with tracing.span("ingest.batch", {"gridmon.readings": len(readings)}, headers):
        return ingest.store_batch(readings, dead, status).as_dict()
