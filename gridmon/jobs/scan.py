"""The scan job: score every stored reading exactly once, per shard, carrying each device's state.

Devices are split into `scan_shards` shards (`gridmon.domain.shards`); each shard has its own
watermark row in `scan_state` (`readings/<shard>of<shards>`) and its scan is an independent unit
of work, so any number of scan workers take shards in parallel. A shard step reads the readings
of its devices whose `ingested_at` lies in [watermark, upper), loads those devices' detector
states, runs the streaming detector (`gridmon.detection.stream`) over each device's new
readings only, folds alarm runs into anomaly alerts, writes the states back and moves the
watermark — all in one transaction: a step that fails leaves nothing behind and is done again
from the last committed watermark and state. Half-open windows that meet end to end: no reading
is scored twice, none is skipped. A late reading (stored now, stamped long ago) has a new
`ingested_at` and is scored in the next step like any other.

Choosing `upper` safely: `ingested_at` is stamped while the ingest transaction runs and the row
becomes visible only at commit, later. So `upper` is the older of (now − `scan_safety_lag_s`) and
the start of the oldest write transaction still open (`pg_stat_activity.xact_start`): every row
stamped before it is committed. Transactions open longer than `scan_stuck_transaction_s` are
ignored (and logged) so one forgotten session cannot stop detection.

A backlog is worked off in steps of at most `scan_max_rows` readings. Housekeeping runs once per
round, by the scan of shard 0: storing the heartbeat gaps the bridges queued as pipeline outages
(`gridmon.jobs.outages`), silent devices (not counting outages), forgetting old dedupe and outbox
rows, draining the outbox. Two scans of one shard never run at once: the second finds the row
locked and returns `busy`. Every statement runs in `gridmon.storage`.

No single reading may stop the scan (docs/security.md). Before a step loads its window, rows that
validation would reject today (a timestamp outside the accepted range, non-finite or physically
impossible values — stored before the checks existed, or by a path that skipped them) are moved
to dead letters with that reason (`gridmon.storage.quarantine`), in the step's transaction. Each
device is scored in a savepoint: a device whose scoring raises has its window's readings moved to
dead letters (`scan_failed`, the error in the detail; replayable once fixed) and every other
device's findings and alerts come out as usual. Each is logged and counted in
`gridmon_quarantined_readings_total{job="scan"}`. Only when every device of a several-device step
fails is it taken for a detector fault: the step fails and its watermark stays, and the scan
still does its housekeeping (silent devices, publishing) before it reports `failed`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import psycopg

from gridmon import metrics
from gridmon.alerts.anomaly import apply_runs
from gridmon.alerts.gaps import check_gaps
from gridmon.alerts.stale import check_stale
from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.safety import check_safety
from gridmon.detection.stream.device import score_rows, split_devices
from gridmon.detection.stream.forest import ForestSet, group_key
from gridmon.detection.stream.params import DetectorParams
from gridmon.detection.stream.state import DeviceState
from gridmon.domain.shards import bucket_range
from gridmon.jobs.limits import default_limits, device_limits
from gridmon.jobs.models import ActiveModel
from gridmon.jobs.outages import down_since, store_queued_gaps
from gridmon.jobs.publish import get_publisher, sink_names
from gridmon.storage import db, detector_state, devices, frames, outbox, quarantine, scan_state
from gridmon.storage.alerts import prune_counted_readings

log = logging.getLogger(__name__)

LEGACY_SCAN = "readings"  # the single scan's row before shards: its watermark seeds new shards
_TICK = timedelta(microseconds=1)  # timestamptz resolution

_active_model = ActiveModel()
_QUARANTINE_DETAIL = "scan: stored reading that validation rejects today (moved by the scan)"


def shard_name(shard: int, shards: int) -> str:
    return f"{LEGACY_SCAN}/{shard}of{shards}"


def detector_params() -> DetectorParams:
    """The detector configuration of this deployment (defaults + the alarm budget setting)."""
    return DetectorParams(alarms_per_day=get_settings().alarms_per_device_day)


@dataclass
class ScanReport:
    """What one scan did (the task's result)."""

    status: str = "ok"
    shards: list[int] = field(default_factory=list)
    steps: int = 0
    readings: int = 0
    devices: int = 0
    largest_step: int = 0
    alarms: int = 0
    findings: int = 0
    events: dict[str, int] = field(default_factory=dict)
    model_id: int | None = None
    watermark: str | None = None
    published: int = 0
    publish_error: str | None = None
    busy: list[int] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    """Readings moved to dead letters, by reason (`scan_failed`: the device's scoring raised)."""
    failed_devices: list[str] = field(default_factory=list)
    error: str | None = None
    alertmanager: int = 0
    alertmanager_error: str | None = None

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


def _step_upper(
    conn: psycopg.Connection, lower: datetime, upper: datetime, max_rows: int, buckets: tuple[int, int]
) -> datetime:
    """Shrink [lower, upper) until it holds at most `max_rows` of the shard's readings."""
    count = frames.shard_count_ingested_between(conn, lower, upper, buckets)
    while count > max_rows:
        candidate = lower + (upper - lower) * (max_rows / count)
        if candidate <= lower + _TICK:
            # More readings share one ingest instant than a step may hold: take them whole.
            return lower + _TICK
        upper, count = candidate, frames.shard_count_ingested_between(conn, lower, candidate, buckets)
    return upper


def _load_state(
    stored: detector_state.StoredState | None, metrics: list[str], forest_version: int | None
) -> DeviceState:
    """The stored state (its forest calibration reset when another forest version is active now),
    or a fresh one for a device seen for the first time or stored by another state version."""
    state = DeviceState.from_bytes(stored.state) if stored is not None else None
    if state is None:
        return DeviceState.new(metrics)
    if stored is not None and stored.forest_version != forest_version:
        state.reset_forest()
    return state


class DetectionBroken(RuntimeError):
    """Scoring failed for every device of a step: a detector fault, not a poison reading."""


def score_frame(
    conn: psycopg.Connection, frame: pd.DataFrame, report: ScanReport, forests: ForestSet | None
) -> list[tuple[str, Exception]]:
    """Safety limits and the streaming detector over `frame` (sorted by device, ts): limit
    findings and alarm runs become alerts; device states are written back (caller's transaction).

    The whole frame is scored in one savepoint; if that raises, it is rolled back and scored
    device by device, each in its own savepoint. Returns the devices whose scoring raised, with
    the error: nothing of theirs was written, and the caller sets their readings aside."""
    try:
        _score_isolated(conn, frame, report, forests)
        return []
    except db.TRANSIENT_DB_ERRORS:
        raise
    except Exception:
        log.exception("scoring a scan step failed; scoring device by device readings=%d", len(frame))
    failed: list[tuple[str, Exception]] = []
    ids = sorted(frame["device_id"].unique().tolist())
    for device in ids:
        try:
            _score_isolated(conn, frame[frame["device_id"] == device], report, forests)
        except db.TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:
            log.error("scoring failed for one device device=%s error=%r", device, exc)
            failed.append((device, exc))
    if len(ids) > 1 and len(failed) == len(ids):
        raise DetectionBroken(f"scoring failed for all {len(ids)} devices of the step: {failed[0][1]!r}")
    return failed


def _score_isolated(
    conn: psycopg.Connection, frame: pd.DataFrame, report: ScanReport, forests: ForestSet | None
) -> None:
    """`_score` in a savepoint, its counts added to `report` only when it succeeded."""
    scratch = ScanReport(model_id=report.model_id)
    with conn.transaction():
        _score(conn, frame, scratch, forests)
    report.findings += scratch.findings
    report.alarms += scratch.alarms
    report.devices += scratch.devices
    for event, n in scratch.events.items():
        report.count(event, n)


def _score(conn: psycopg.Connection, frame: pd.DataFrame, report: ScanReport, forests: ForestSet | None) -> None:
    """The scoring itself. The ingest job already applied the safety limits to these readings;
    checking them again here is idempotent (each reading counts once) and catches rows that
    reached the table another way (a replayed dead letter, a bulk load)."""
    settings = get_settings()
    params = detector_params()
    ids = sorted(frame["device_id"].unique().tolist())
    default = default_limits(settings)
    limit_findings = check_safety(frame, device_limits(conn, ids, default), default).findings
    report.findings += len(limit_findings)
    seen_until = frame.groupby("device_id")["ts"].max().to_dict()
    for event in apply_findings(conn, limit_findings, gap_s=settings.episode_gap_s, seen_until=seen_until):
        report.count(event.event)
    stored = detector_state.load(conn, ids)
    kinds = devices.kinds(conn, ids)
    rows = []
    for batch in split_devices(frame):
        device = batch.device_id
        state = _load_state(stored.get(device), list(batch.columns), report.model_id)
        state = state.with_metrics(batch.columns)
        key = group_key(kinds.get(device), state.metrics)
        forest = forests.for_group(key, len(state.metrics)) if forests else None
        state, result = score_rows(state, batch, params=params, forest=forest)
        report.alarms += len(result.runs)
        if result.runs or result.ended_at is not None:
            for event in apply_runs(conn, device, result.runs, ended_at=result.ended_at):
                report.count(event.event)
        rows.append((device, state.to_bytes(), report.model_id, state.readings, state.last_ts))
    detector_state.save(conn, rows)
    report.devices += len(rows)


def set_aside(
    conn: psycopg.Connection,
    failed: list[tuple[str, Exception]],
    lower: datetime,
    upper: datetime,
    buckets: tuple[int, int],
    report: ScanReport,
) -> None:
    """Move the window's readings of each failed device to dead letters (`scan_failed`)."""
    for device_id, exc in failed:
        detail = f"scan: scoring failed for this device: {exc!r}"
        moved = quarantine.quarantine_device(
            conn, device_id, lower, upper, buckets, reason="scan_failed", detail=detail
        )
        _count_quarantined(report, "scan_failed", moved)
        report.failed_devices.append(device_id)
        log.error("scan moved one device's readings to dead letters device=%s count=%d", device_id, moved)


def _count_quarantined(report: ScanReport, reason: str, n: int) -> None:
    report.quarantined[reason] = report.quarantined.get(reason, 0) + n
    metrics.count_quarantined("scan", reason, n)


def _quarantine_unusable(
    conn: psycopg.Connection, lower: datetime, upper: datetime, buckets: tuple[int, int], report: ScanReport
) -> None:
    for reason, n in quarantine.quarantine_unusable(conn, lower, upper, buckets, detail=_QUARANTINE_DETAIL).items():
        _count_quarantined(report, reason, n)
        log.warning("scan moved unusable readings to dead letters reason=%s count=%d", reason, n)


def _scan_step(
    conn: psycopg.Connection, lower: datetime, upper: datetime, buckets: tuple[int, int], report: ScanReport
) -> int:
    _quarantine_unusable(conn, lower, upper, buckets, report)
    frame = frames.shard_ingested_between(conn, lower, upper, buckets)
    if frame.empty:
        return 0
    report.model_id, forests = _active_model.get(conn)
    set_aside(conn, score_frame(conn, frame, report, forests), lower, upper, buckets, report)
    return len(frame)


class ShardMismatch(RuntimeError):
    """`scan_shards` does not match the shard rows in `scan_state` (see `reshard`)."""


def _scan_shard(shard: int, shards: int, report: ScanReport) -> None:
    settings = get_settings()
    name = shard_name(shard, shards)
    buckets = bucket_range(shard, shards)
    while True:
        with db.connection() as conn:
            if scan_state.watermark_of(conn, name) is None:
                # A new shard row is only right when no other shard layout exists: a worker
                # started with another GRIDMON_SCAN_SHARDS would score readings twice.
                counts = scan_state.shard_counts(conn, LEGACY_SCAN) - {shards}
                if counts:
                    raise ShardMismatch(
                        f"GRIDMON_SCAN_SHARDS is {shards} but the scan state has {sorted(counts)} shards: "
                        f"set GRIDMON_SCAN_SHARDS={max(counts)} or run `gridmon scan reshard --shards {shards}`"
                    )
            seed = scan_state.watermark_of(conn, LEGACY_SCAN)
            lower = scan_state.lock_watermark(conn, name, settings.scan_initial_lookback_s, start=seed)
            if lower is None:
                report.busy.append(shard)
                log.info("scan of shard %d/%d skipped: another scan holds it", shard, shards)
                return
            bound = safe_upper_bound(conn, settings.scan_safety_lag_s)
            if bound <= lower:
                report.watermark = lower.isoformat()
                return
            upper = _step_upper(conn, lower, bound, settings.scan_max_rows, buckets)
            n = _scan_step(conn, lower, upper, buckets, report)
            scan_state.advance(conn, name, upper, n)
            report.steps += 1
            report.readings += n
            report.largest_step = max(report.largest_step, n)
            report.watermark = upper.isoformat()
        if upper >= bound:
            return


def housekeeping(report: ScanReport, *, now: float | None = None, drain: bool = True) -> None:
    """Once per scan round: pipeline outages, silent devices, devices losing readings (`data_gap`),
    forgetting old dedupe/outbox rows, publishing."""
    settings = get_settings()
    wall = now if now is not None else time.time()
    store_queued_gaps()
    with db.connection() as conn:
        for event in check_stale(
            conn,
            factor=settings.stale_factor,
            min_silence_s=settings.stale_min_s,
            now=wall,
            ongoing_since=down_since(wall, settings.pipeline_gap_s),
        ):
            report.count(event.event)
        for event in check_gaps(
            conn,
            share=settings.data_gap_share,
            window_s=settings.data_gap_window_s,
            min_missing=settings.data_gap_min_missing,
            now=wall,
        ):
            report.count(event.event)
        prune_counted_readings(conn, timedelta(seconds=settings.counted_readings_retention_s))
        outbox.prune_published(conn, timedelta(seconds=settings.outbox_retention_s), sink_names())
    if drain:
        result = get_publisher().drain()
        report.published, report.publish_error = result.published, result.error
        report.alertmanager, report.alertmanager_error = result.alertmanager, result.alertmanager_error


def run_scan(*, shard: int | None = None, now: float | None = None, drain: bool = True) -> ScanReport:
    """Scan one shard (`shard`) or all of them in turn (None), then (all, or shard 0) do the
    round's housekeeping. `now` (epoch s) is what the staleness check compares with (tests)."""
    shards = get_settings().scan_shards
    report = ScanReport()
    todo = range(shards) if shard is None else [shard]
    for s in todo:
        report.shards.append(s)
        try:
            _scan_shard(s, shards, report)
        except ShardMismatch as exc:
            log.error("%s", exc)
            report.status = "misconfigured"
            return report
        except db.TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:
            # The shard's watermark stays (the step is done again next time); the other shards
            # and the housekeeping (silent devices, publishing) go on.
            log.exception("scan of shard %d/%d failed", s, shards)
            report.status, report.error = "failed", repr(exc)[:300]
    if report.busy and len(report.busy) == len(todo):
        report.status = "busy"
    if shard is None or shard == 0:
        housekeeping(report, now=now, drain=drain)
    log.info(
        "scan done shards=%s steps=%d readings=%d devices=%d alarms=%d events=%s model=%s published=%d",
        report.shards if len(report.shards) <= 4 else f"{len(report.shards)} shards",
        report.steps,
        report.readings,
        report.devices,
        report.alarms,
        report.events,
        report.model_id,
        report.published,
    )
    return report


@dataclass
class ReshardReport:
    """What `reshard` did."""

    old: list[int]
    new: int
    watermark: str
    drained_readings: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reshard(new_shards: int) -> ReshardReport:
    """Change the number of shards without scoring a reading twice or skipping one.

    In one transaction: lock every shard row (running scans finish their step first; new ones
    find the rows locked and skip), score each old shard from its watermark up to one common
    safe bound, then replace the rows by `new_shards` rows at that bound. Device states are
    per device, so they carry over. Afterwards set GRIDMON_SCAN_SHARDS to the new count for
    every worker and beat (a worker with the old count refuses to create rows: ShardMismatch).
    """
    bucket_range(0, new_shards)  # validates the count
    settings = get_settings()
    report = ScanReport()
    with db.connection() as conn:
        # Shards of the current layout that never ran start where a first scan would have.
        seed = scan_state.watermark_of(conn, LEGACY_SCAN)
        for count in scan_state.shard_counts(conn, LEGACY_SCAN) or {settings.scan_shards}:
            for shard in range(count):
                scan_state.ensure_row(conn, shard_name(shard, count), settings.scan_initial_lookback_s, start=seed)
        rows = scan_state.lock_all(conn, LEGACY_SCAN)
        bound = safe_upper_bound(conn, settings.scan_safety_lag_s)
        old_counts = sorted(scan_state.shard_counts(conn, LEGACY_SCAN))
        if any(w > bound for _, w in rows):
            # A write transaction older than a shard's watermark is still open: the common
            # bound would fall behind that shard. Rare and short-lived; do not guess.
            raise RuntimeError("a database transaction older than the scan watermarks is open; try again shortly")
        report.model_id, forests = _active_model.get(conn)
        for name, watermark in rows:
            shard, shards = (int(x) for x in name.split("/", 1)[1].split("of"))
            lower = watermark
            while lower < bound:
                upper = _step_upper(conn, lower, bound, settings.scan_max_rows, bucket_range(shard, shards))
                _quarantine_unusable(conn, lower, upper, bucket_range(shard, shards), report)
                frame = frames.shard_ingested_between(conn, lower, upper, bucket_range(shard, shards))
                if not frame.empty:
                    failed = score_frame(conn, frame, report, forests)
                    set_aside(conn, failed, lower, upper, bucket_range(shard, shards), report)
                report.readings += len(frame)
                lower = upper
        scan_state.replace_rows(conn, LEGACY_SCAN, [shard_name(s, new_shards) for s in range(new_shards)], bound)
    log.info("resharded %s -> %d at %s after scoring %d readings", old_counts, new_shards, bound, report.readings)
    return ReshardReport(old=old_counts, new=new_shards, watermark=bound.isoformat(), drained_readings=report.readings)
