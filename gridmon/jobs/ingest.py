"""The ingest job: one bridge batch → one transaction → the safety check → metrics and a log line.

Called by the `workers.ingest.ingest_batch` task (and by tests directly). The batch is the wire
format of `gridmon.domain.wire`. In order:
1. readings and the bridge's dead letters are written in one transaction (`gridmon.storage.readings`);
2. the stored readings are checked against the safety limits and any findings are folded into
   alerts through the same episode tracker and outbox as the scan (`gridmon.alerts.tracker`), so
   a 260 V reading alerts within one batch instead of waiting for the next scan;
3. the outbox is drained when due (`gridmon.jobs.publish`).

A batch the database refuses as data (not a transient outage) is dead-lettered whole, each
reading as the JSON object a sensor would send, so it can be replayed once the cause is fixed.
Transient database errors propagate: the task retries the batch. The safety step never fails the
batch: the scan checks safety limits too, so a batch whose check failed is still covered a scan
later, and `alert_readings` keeps a reading from being counted twice. It never resolves an
alert as normal (only the scan, which runs every detector, knows a reading is normal).
"""

from __future__ import annotations

import functools
import logging
import operator
import time
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import orjson
import psycopg
import sqlalchemy.exc

from gridmon import metrics, tracing
from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.safety import check_safety
from gridmon.domain.readings import DeadLetter
from gridmon.domain.wire import decode_dead
from gridmon.jobs.limits import CachedLimits
from gridmon.jobs.publish import get_publisher
from gridmon.storage import db
from gridmon.storage.dead_letters import write_dead_letters
from gridmon.storage.frames import rows_to_frame
from gridmon.storage.readings import write_readings

log = logging.getLogger(__name__)

REFUSED_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError, sqlalchemy.exc.DataError)
"""Errors about the batch's data: retrying cannot help, so the batch is dead-lettered."""

_CORE_VALUES = operator.itemgetter(2, 3, 4)  # voltage, current, temperature of a stored row


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one batch did (the task's result). `refused`: the database refused it as data."""

    received: int
    inserted: int
    duplicates: int
    dead_letters: int
    alert_events: int = 0
    refused: bool = False

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in asdict(self).items()}


@functools.lru_cache(maxsize=1)
def cached_limits() -> CachedLimits:
    """The process's safety limits (profiles reloaded at most once a minute)."""
    return CachedLimits()


def store_batch(readings: Sequence[Sequence[Any]], dead: Sequence[Sequence[Any]] | None = None) -> IngestReport:
    """Write one batch and its dead letters in one transaction, then run the safety check."""
    dead_letters = [decode_dead(item) for item in dead or ()]
    started = time.monotonic()
    m = metrics.ingest()
    try:
        with (
            tracing.span("db.write", {"db.system": "postgresql", "gridmon.readings": len(readings)}),
            db.connection() as conn,
        ):
            result = write_readings(conn, readings, dead_letters)
    except db.TRANSIENT_DB_ERRORS:
        m.failures.inc()
        log.warning("database unavailable, batch will be retried readings=%d", len(readings))
        raise
    except REFUSED_ERRORS as exc:
        log.error("batch refused by database, dead-lettering it readings=%d error=%s", len(readings), exc)
        dead_letter_batch(readings, dead, str(exc))
        return IngestReport(len(readings), 0, 0, len(readings) + len(dead_letters), refused=True)
    committed = time.time()
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
    try:
        events = check_safety_limits(readings)
    except Exception:
        log.exception("safety check of a stored batch failed (the next scan covers it) readings=%d", len(readings))
        events = 0
    return IngestReport(result.received, result.inserted, result.duplicates, result.dead_letters, events)


def check_safety_limits(rows: Sequence[Sequence[Any]]) -> int:
    """Check stored rows (device_id, ts, voltage, current, temperature, extra) against the safety
    limits, fold findings into alerts, drain the outbox when due; returns the alert events written."""
    if not rows:
        return 0
    cached = cached_limits()
    # The common case, a batch of normal readings, costs one vectorised comparison.
    values = np.array(list(map(_CORE_VALUES, rows)), dtype=float).T
    low, high = cached.inner_band()
    if bool(np.all((values >= low) & (values <= high))):
        get_publisher().drain_if_due(False)
        return 0
    written = 0
    result = check_safety(rows_to_frame(rows), cached.get(), cached.default)
    if result.findings:
        with db.connection() as conn:
            written = len(apply_findings(conn, result.findings, gap_s=get_settings().episode_gap_s))
    get_publisher().drain_if_due(written > 0)
    return written


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


def dead_letter_batch(readings: Sequence[Sequence[Any]], dead: Sequence[Sequence[Any]] | None, detail: str) -> int:
    """Dead-letter a refused batch whole (reason `ingest_refused`) with the bridge's dead letters;
    returns how many letters were written."""
    now = time.time()
    # Stored as the JSON object a sensor would send, on its device's topic, so a replay through
    # the API (after whatever made the database refuse it is fixed) validates it like any reading.
    letters = [
        DeadLetter(now, f"grid/sensors/{r[0]}", orjson.dumps(_as_payload(r)), "ingest_refused", detail[:500])
        for r in readings
    ]
    letters += [decode_dead(item) for item in dead or ()]
    with db.connection() as conn, conn.cursor() as cur:
        return write_dead_letters(cur, letters)
