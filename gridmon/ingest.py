"""The ingest unit of work: one bridge batch → one transaction → metrics and a log line.

Called by the `workers.ingest.ingest_batch` task (and by tests directly). The wire format is
what the bridge sends (see `gridmon.bridge.wire`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any

from gridmon import db, metrics, tracing
from gridmon.bridge.wire import decode_dead
from gridmon.storage.readings import WriteResult, write_readings

log = logging.getLogger(__name__)

# Hooks run after a batch committed, with the stored rows (e.g. safety-limit alerts). They must
# not raise: a failing hook is logged, the batch stays stored.
AfterStore = Callable[[Sequence[Sequence[Any]]], None]
after_store_hooks: list[AfterStore] = []


def store_batch(readings: Sequence[Sequence[Any]], dead: Sequence[Sequence[Any]] | None = None) -> WriteResult:
    """Write one batch and its dead letters in one transaction."""
    dead_letters = [decode_dead(item) for item in dead or ()]
    started = time.monotonic()
    with (
        tracing.span("db.write", {"db.system": "postgresql", "gridmon.readings": len(readings)}),
        db.connection() as conn,
    ):
        result = write_readings(conn, readings, dead_letters)
    committed = time.time()
    m = metrics.ingest()
    m.stored.inc(result.inserted)
    m.duplicates.inc(result.duplicates)
    m.batch_size.observe(len(readings))
    metrics.observe_many(m.latency, [max(committed - reading[1], 0.0) for reading in readings])
    for reason, count in Tally(d.reason for d in dead_letters).items():
        m.dead_letters.labels(reason).inc(count)
    log.info(
        "batch stored readings=%d inserted=%d duplicates=%d dead_letters=%d ms=%.1f",
        result.received,
        result.inserted,
        result.duplicates,
        result.dead_letters,
        (time.monotonic() - started) * 1000,
    )
    for hook in after_store_hooks:
        try:
            hook(readings)
        except Exception:
            log.exception("after-store hook failed hook=%s", getattr(hook, "__name__", hook))
    return result
