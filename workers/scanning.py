"""Scan tasks (queue `scan`): the sharded anomaly scan and the outbox drain, each one job call.

Beat runs `scan` every scan interval; it enqueues one `scan_shard` per shard (a Celery group),
so every worker on the `scan` queue takes shards in parallel. Each shard task expires before
the next round, so a backlog after an outage runs once, not once per missed tick. Shard 0 (its
task also does the round's housekeeping) goes first and the others rotate every round
(`round_order`), so when a round overruns it is not always the same shards whose tasks expire.
"""

from __future__ import annotations

import time
from typing import Any

from celery import group

from gridmon.celery import app
from gridmon.config import get_settings
from gridmon.domain.shards import round_order
from gridmon.jobs.publish import publish
from gridmon.jobs.scan import run_scan


@app.task(name="workers.scanning.scan", acks_late=True, ignore_result=True)
def scan() -> dict[str, Any]:
    """Enqueue one shard scan per shard (`GRIDMON_SCAN_SHARDS`)."""
    settings = get_settings()
    shards = settings.scan_shards
    order = round_order(shards, int(time.time() // settings.scan_interval_s))
    group(scan_shard.s(s).set(expires=settings.scan_interval_s) for s in order).apply_async()
    return {"shards": shards}


@app.task(name="workers.scanning.scan_shard", acks_late=True, reject_on_worker_lost=True)
def scan_shard(shard: int) -> dict[str, Any]:
    """Score what the shard's devices sent since its watermark, update alerts; shard 0 also
    checks silent devices and publishes.

    Not retried: a failed step changed nothing (each step is one transaction) and the next
    round starts where it stopped.
    """
    return run_scan(shard=shard).to_dict()


@app.task(name="workers.scanning.publish_alerts", acks_late=True, ignore_result=True)
def publish_alerts() -> int:
    """Drain the outbox to Redis now (the scan and the prediction run also do this every run)."""
    return publish().published
