"""Ingest tasks: store a bridge batch.

acks_late + reject_on_worker_lost: a batch whose worker dies mid-write goes back to the queue and
is written again; the primary key makes the second write a no-op for rows already committed.
Only transient database errors are retried (with backoff, without limit: dropping a batch
would lose readings); a batch the database refuses as data goes to dead_letters whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
import sqlalchemy.exc
from celery import Task

from gridmon import db, ingest, metrics, tracing
from gridmon.alerts import hook as safety_hook
from gridmon.celery import app
from gridmon.db import TRANSIENT_DB_ERRORS
from gridmon.domain.readings import DeadLetter
from gridmon.storage.readings import write_dead_letters

log = logging.getLogger(__name__)

# Safety-limit alerts are raised from the ingest path, right after each batch commits, so a
# 260 V reading alerts within one batch instead of waiting for the next scan.
safety_hook.install()



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
    self: Task, readings: Sequence[Sequence[Any]], dead: Sequence[Sequence[Any]] | None = None
) -> dict[str, int]:
    """Store one micro-batch of readings (and the bridge's dead letters) in one transaction."""
    try:
        with tracing.span(
            "ingest.batch", {"gridmon.readings": len(readings)}, tracing.headers_from_request(self.request)
        ):
            result = ingest.store_batch(readings, dead)
    except TRANSIENT_DB_ERRORS:
        metrics.ingest().failures.inc()
        log.warning(
            "database unavailable, batch will be retried readings=%d retries=%d", len(readings), self.request.retries
        )
        raise
    except (psycopg.DataError, psycopg.IntegrityError, sqlalchemy.exc.DataError) as exc:
        log.error("batch refused by database, dead-lettering it readings=%d error=%s", len(readings), exc)
        _dead_letter_batch(readings, dead, str(exc))
        return {
            "received": len(readings),
            "inserted": 0,
            "duplicates": 0,
            "dead_letters": len(readings) + len(dead or ()),
        }
    return {
        "received": result.received,
        "inserted": result.inserted,
        "duplicates": result.duplicates,
        "dead_letters": result.dead_letters,
    }


def _as_payload(row: Sequence[Any]) -> dict[str, Any]:
    device_id, ts, voltage, current, temperature, extra = row
    doc: dict[str, Any] = {
        "device_id": device_id,
        "timestamp": ts,
        "voltage": voltage,
        "current": current,
        "temperature": temperature,
    }
    if extra:
        doc["extra"] = extra
    return doc


def _dead_letter_batch(readings: Sequence[Sequence[Any]], dead: Sequence[Sequence[Any]] | None, detail: str) -> None:
    import time

    from gridmon.bridge.wire import decode_dead

    now = time.time()
    # Stored as the JSON object a sensor would send, on its device's topic, so a replay through
    # the API (after whatever made the database refuse it is fixed) validates it like any reading.
    letters = [
        DeadLetter(now, f"grid/sensors/{r[0]}", orjson.dumps(_as_payload(r)), "ingest_refused", detail[:500])
        for r in readings
    ]
    letters += [decode_dead(item) for item in dead or ()]
    with db.connection() as conn, conn.cursor() as cur:
        write_dead_letters(cur, letters)
