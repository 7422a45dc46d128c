"""The ingest job: one bridge batch → one transaction → the safety check → metrics and a log line.

Called by the `workers.ingest.ingest_batch` task (and by tests directly). The batch is the wire
format of `gridmon.domain.wire`. In order:
1. readings and the bridge's dead letters are written in one transaction (`gridmon.storage.readings`),
   with the gaps in the devices' `seq` recomputed for the span the batch touched
   (`gridmon.storage.seq_gaps`);
2. the stored readings are checked against the safety limits and any findings are folded into
   alerts through the same episode tracker and outbox as the scan (`gridmon.alerts.tracker`), so
   a 260 V reading alerts within one batch instead of waiting for the next scan;
3. the outbox is drained when due (`gridmon.jobs.publish`).

No single reading may stop the batch (docs/security.md): rows the table cannot take (a timestamp
outside the accepted range, a non-finite value, a malformed row) are screened out first
(`gridmon.domain.screen`) and become dead letters with their reason; a refusal the screen did not
foresee is narrowed down, halving the batch in savepoints, to the rows the database refuses,
which become `ingest_refused` dead letters. Each letter is the reading as the JSON object a sensor
would send, so it can be replayed once the cause is fixed; every one is counted in
`gridmon_quarantined_readings_total{job="ingest"}`. Transient database errors propagate: the
task retries the batch. The safety step never fails the batch: if it raises, it runs again device
by device and a device whose check still fails is logged, counted (`job="safety"`) and left to
the scan, which checks safety limits too (`alert_readings` keeps a reading from being counted
twice). It never resolves an alert as normal (only the scan, which runs every detector, knows a
reading is normal).
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
import psycopg
import sqlalchemy.exc

from gridmon import metrics, tracing
from gridmon.alerts.presence import apply_status
from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.safety import check_safety
from gridmon.domain.readings import DeadLetter, Rejection, dead_letter
from gridmon.domain.screen import row_payload, row_topic, screen_rows
from gridmon.domain.wire import core_row, decode_dead
from gridmon.jobs.limits import CachedLimits
from gridmon.jobs.publish import get_publisher
from gridmon.storage import db
from gridmon.storage.dead_letters import write_dead_letters
from gridmon.storage.frames import rows_to_frame
from gridmon.storage.readings import WriteResult, write_readings

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


def store_batch(
    readings: Sequence[Sequence[Any]],
    dead: Sequence[Sequence[Any]] | None = None,
    status: Sequence[Sequence[Any]] | None = None,
) -> IngestReport:
    """Write one batch, its dead letters and its device status events (Sparkplug births and
    deaths → `no_data` alerts, `gridmon.alerts.presence`) in one transaction, then run the safety check.

    Rows the table cannot take are dead letters of their own (screened first; a refusal the
    screen did not foresee is narrowed down to the refused rows), never the whole batch's fate."""
    settings = get_settings()
    dead_letters = [decode_dead(item) for item in dead or ()]
    status_events = 0
    rows, rejected = screen_rows(readings)
    if rejected:
        dead_letters += _screened_out(rejected, settings.dead_letter_payload_bytes)
    started = time.monotonic()
    m = metrics.ingest()
    refused = 0
    try:
        with (
            tracing.span("db.write", {"db.system": "postgresql", "gridmon.readings": len(rows)}),
            db.connection() as conn,
        ):
            try:
                with conn.transaction():
                    result = write_readings(conn, rows, dead_letters)
            except REFUSED_ERRORS as exc:
                log.error("batch refused by database, narrowing down readings=%d error=%s", len(rows), exc)
                result, refused = _write_narrowing(conn, rows, dead_letters, settings.dead_letter_payload_bytes)
            if status:
                status_events = len(apply_status(conn, status))
    except db.TRANSIENT_DB_ERRORS:
        m.failures.inc()
        log.warning("database unavailable, batch will be retried readings=%d", len(readings))
        raise
    committed = time.time()
    m.stored.inc(result.inserted)
    m.duplicates.inc(result.duplicates)
    if result.missing_change > 0:
        m.missing.inc(result.missing_change)
    elif result.missing_change < 0:
        m.filled.inc(-result.missing_change)
    m.batch_size.observe(len(readings))
    metrics.observe_many(m.latency, [max(committed - float(row[1]), 0.0) for row in rows])
    for reason, count in Tally(d.reason for d in dead_letters).items():
        m.dead_letters.labels(reason).inc(count)
    log.debug(
        "batch stored readings=%d inserted=%d duplicates=%d dead_letters=%d ms=%.1f",
        len(readings),
        result.inserted,
        result.duplicates,
        result.dead_letters,
        (time.monotonic() - started) * 1000,
    )
    events = check_safety_limits(rows, wrote_events=status_events > 0)
    return IngestReport(
        len(readings),
        result.inserted,
        result.duplicates,
        result.dead_letters,
        events + status_events,
        refused=refused > 0,
    )


def _screened_out(rejected: list[tuple[Sequence[Any], Rejection]], keep: int) -> list[DeadLetter]:
    now = time.time()
    for reason, count in Tally(problem.reason for _, problem in rejected).items():
        metrics.count_quarantined("ingest", reason, count)
        log.warning("readings screened out of a batch reason=%s count=%d", reason, count)
    return [
        dead_letter(now, row_topic(row), row_payload(row), p.reason, f"ingest: {p.detail}", keep_bytes=keep)
        for row, p in rejected
    ]


def _write_narrowing(
    conn: psycopg.Connection, rows: Sequence[Sequence[Any]], letters: list[DeadLetter], keep: int
) -> tuple[WriteResult, int]:
    """Write what the database takes, halving refused chunks (each in a savepoint) down to the
    single rows it refuses, which become `ingest_refused` dead letters. Returns (result, refused)."""
    now = time.time()
    inserted = missing_change = 0
    refused: list[DeadLetter] = []
    pending: list[Sequence[Sequence[Any]]] = [rows]
    while pending:
        chunk = pending.pop()
        try:
            with conn.transaction():
                written_chunk = write_readings(conn, chunk)
                inserted += written_chunk.inserted
                missing_change += written_chunk.missing_change
        except REFUSED_ERRORS as exc:
            if len(chunk) > 1:
                pending += [chunk[len(chunk) // 2 :], chunk[: len(chunk) // 2]]
                continue
            log.error("reading refused by database device=%s error=%s", str(chunk[0][0])[:64], exc)
            detail = f"refused by the database: {exc}"
            refused.append(
                dead_letter(now, row_topic(chunk[0]), row_payload(chunk[0]), "ingest_refused", detail, keep_bytes=keep)
            )
    metrics.count_quarantined("ingest", "ingest_refused", len(refused))
    with conn.cursor() as cur:
        written = write_dead_letters(cur, [*letters, *refused])
    stored = len(rows) - len(refused)
    return WriteResult(len(rows), inserted, stored - inserted, written, missing_change), len(refused)


def check_safety_limits(rows: Sequence[Sequence[Any]], *, wrote_events: bool = False) -> int:
    """Check stored rows against the safety limits, fold findings into alerts, drain the outbox when
    due; returns the alert events written. Never raises: the scan checks safety limits too, so a
    device whose check failed here is covered a scan later (counted as `safety_failed`)."""
    try:
        return _check_safety_limits(rows, wrote_events)
    except db.TRANSIENT_DB_ERRORS:
        log.warning("safety check skipped: database unavailable (the next scan covers it) readings=%d", len(rows))
        return 0
    except Exception:
        log.exception("safety check of a batch failed; checking device by device readings=%d", len(rows))
    written = 0
    by_device: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_device.setdefault(str(row[0]), []).append(row)
    for device_id, device_rows in sorted(by_device.items()):
        try:
            written += _check_safety_limits(device_rows)
        except Exception as exc:
            metrics.count_quarantined("safety", "safety_failed", len(device_rows))
            log.error(
                "safety check failed for one device; left to the scan device=%s readings=%d error=%r",
                device_id[:64],
                len(device_rows),
                exc,
            )
    return written


def _check_safety_limits(rows: Sequence[Sequence[Any]], wrote_events: bool = False) -> int:
    if not rows:
        if wrote_events:  # a batch of Sparkplug births/deaths only
            get_publisher().drain_if_due(True)
        return 0
    cached = cached_limits()
    # The common case, a batch of normal readings, costs one vectorised comparison.
    values = np.array(list(map(_CORE_VALUES, rows)), dtype=float).T
    low, high = cached.inner_band()
    if bool(np.all((values >= low) & (values <= high))):
        get_publisher().drain_if_due(wrote_events)
        return 0
    written = 0
    # The frame holds the readings, not their seq (rows with and without one may mix).
    result = check_safety(rows_to_frame([core_row(r) for r in rows]), cached.get(), cached.default)
    if result.findings:
        with db.connection() as conn:
            written = len(apply_findings(conn, result.findings, gap_s=get_settings().episode_gap_s))
    get_publisher().drain_if_due(written > 0 or wrote_events)
    return written
