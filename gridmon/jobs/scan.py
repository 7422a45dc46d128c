"""The scan job: score every stored reading exactly once, fold findings into alerts.

Each step reads the readings whose `ingested_at` lies in [watermark, upper), runs `detect` over
them with each device's earlier readings as baseline history, applies the findings to alerts
and moves the watermark to `upper` — all in one transaction, so a step that fails leaves
nothing behind and is simply done again. Half-open windows that meet end to end: no reading is
scored twice, none is skipped. A reading stamped long ago but stored just now (late data) has a
new `ingested_at`, so it is scored in the next scan like any other.

Choosing `upper` safely: `ingested_at` is stamped while the ingest transaction runs (its start
with the column default, the moment of the INSERT with the COPY path's `clock_timestamp()`),
and the row only becomes visible when the transaction commits, later. Reading up to "now" could
pass over a batch still in flight that later appears with an `ingested_at` behind the
watermark. So `upper` is the older of (now − `scan_safety_lag_s`) and the start of the oldest
transaction still open in this database (`pg_stat_activity.xact_start`): no open transaction
can stamp a row earlier than its own start, so every row stamped before `upper` is already
committed. Transactions open
for longer than `scan_stuck_transaction_s` are ignored (and logged) so one forgotten session
cannot stop detection; an ingest batch that takes that long would have its rows skipped by the
scan (the ingest job's safety check still sees them).

A backlog (first run, or after an outage) is worked off in steps of at most `scan_max_rows`
readings. After the steps the scan checks for silent devices, forgets old dedupe and outbox rows
(`counted_readings_retention_s`, `outbox_retention_s`) and drains the outbox to Redis. Two scans
never run at once: the second finds the `scan_state` row locked and returns `busy`. The report is
`ScanReport`; every statement runs in `gridmon.storage`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from gridmon.alerts.stale import check_stale
from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.pipeline import detect
from gridmon.jobs.limits import default_limits, device_limits
from gridmon.jobs.models import ActiveModel
from gridmon.jobs.publish import get_publisher
from gridmon.storage import db, frames, outbox, scan_state
from gridmon.storage.alerts import prune_counted_readings

log = logging.getLogger(__name__)

SCAN_NAME = "readings"
_TICK = timedelta(microseconds=1)  # timestamptz resolution

_active_model = ActiveModel()


@dataclass
class ScanReport:
    """What one scan did (the task's result)."""

    status: str = "ok"
    steps: int = 0
    readings: int = 0
    largest_step: int = 0
    findings: int = 0
    events: dict[str, int] = field(default_factory=dict)
    model_id: int | None = None
    watermark: str | None = None
    published: int = 0
    publish_error: str | None = None

    def count(self, event: str, n: int = 1) -> None:
        self.events[event] = self.events.get(event, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def safe_upper_bound(conn: psycopg.Connection, lag_s: float) -> datetime:
    """The newest `ingested_at` below which every row is committed (see module docstring)."""
    stuck_s = get_settings().scan_stuck_transaction_s
    lagged, oldest_open, stuck = scan_state.upper_bound_inputs(conn, lag_s=lag_s, stuck_s=stuck_s)
    if stuck:
        log.warning("ignoring %d transaction(s) open longer than %.0f s when bounding the scan", stuck, stuck_s)
    return min(lagged, oldest_open) if oldest_open is not None else lagged


def _step_upper(conn: psycopg.Connection, lower: datetime, upper: datetime, max_rows: int) -> datetime:
    """Shrink [lower, upper) until it holds at most `max_rows` readings (a few range counts)."""
    count = frames.count_ingested_between(conn, lower, upper)
    while count > max_rows:
        candidate = lower + (upper - lower) * (max_rows / count)
        if candidate <= lower + _TICK:
            # More readings share one ingest instant than a step may hold: take them whole.
            return lower + _TICK
        upper, count = candidate, frames.count_ingested_between(conn, lower, candidate)
    return upper


def _scan_step(conn: psycopg.Connection, lower: datetime, upper: datetime, report: ScanReport) -> None:
    settings = get_settings()
    frame = frames.ingested_between(conn, lower, upper)
    report.readings += len(frame)
    if frame.empty:
        return
    history = frames.history_for(conn, frame, history_s=settings.scan_history_s, scanned=(lower, upper))
    default = default_limits(settings)
    limits = device_limits(conn, frame["device_id"].unique().tolist(), default)
    report.model_id, model = _active_model.get(conn)
    findings = detect(frame, history=history, model=model, limits=limits, default_limits=default)
    report.findings += len(findings)
    seen_until = frame.groupby("device_id")["ts"].max().to_dict()
    for event in apply_findings(conn, findings, gap_s=settings.episode_gap_s, seen_until=seen_until):
        report.count(event.event)


def run_scan(*, now: float | None = None, name: str = SCAN_NAME, drain: bool = True) -> ScanReport:
    """Scan everything ingested since the watermark, then check silent devices and publish.

    `now` (epoch s) is the wall clock the staleness check compares with (tests pass it).
    """
    settings = get_settings()
    report = ScanReport()
    while True:
        with db.connection() as conn:
            lower = scan_state.lock_watermark(conn, name, settings.scan_initial_lookback_s)
            if lower is None:
                report.status = "busy"
                log.info("scan skipped: another scan is running")
                return report
            bound = safe_upper_bound(conn, settings.scan_safety_lag_s)
            if bound <= lower:
                report.watermark = lower.isoformat()
                break
            upper = _step_upper(conn, lower, bound, settings.scan_max_rows)
            before = report.readings
            _scan_step(conn, lower, upper, report)
            scan_state.advance(conn, name, upper, report.readings - before)
            report.steps += 1
            report.largest_step = max(report.largest_step, report.readings - before)
            report.watermark = upper.isoformat()
        if upper >= bound:
            break
    with db.connection() as conn:
        for event in check_stale(
            conn,
            factor=settings.stale_factor,
            min_silence_s=settings.stale_min_s,
            now=now if now is not None else time.time(),
        ):
            report.count(event.event)
        prune_counted_readings(conn, timedelta(seconds=settings.counted_readings_retention_s))
        outbox.prune_published(conn, timedelta(seconds=settings.outbox_retention_s))
    if drain:
        result = get_publisher().drain()
        report.published, report.publish_error = result.published, result.error
    log.info(
        "scan done steps=%d readings=%d findings=%d events=%s model=%s published=%d",
        report.steps,
        report.readings,
        report.findings,
        report.events,
        report.model_id,
        report.published,
    )
    return report
