"""The demo `gridmon up` runs with its simulator, and its first start.

On a first start — none of the demo fleet's devices is in the database yet — `backfill`
1. registers the devices with their profiles (kind, location, rating; `gridmon.simulator.demo`);
2. writes `demo_history_days` of simulated history, about every 2 s per device like the live
   simulator, through the ingest job (`gridmon.jobs.ingest.store_batch`: COPY, the safety check,
   alerts) in batches, oldest first, and appends the ground truth of its faults to the truth
   file the live simulator also appends to;
3. and `up` then queues a retrain and a maintenance prediction, so a model version, trends and
   a maintenance outlook exist within minutes rather than after a day.

The live simulator then continues the same fleet (`gridmon simulate --demo`): the same devices,
levels and phase (the fleet identity in the data directory), and the same slow degradation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from gridmon.config import Settings
from gridmon.domain.units import DAY_S
from gridmon.jobs.ingest import cached_limits, store_batch
from gridmon.simulator.demo import demo_degradation, demo_devices, demo_history, fleet_profiles
from gridmon.simulator.identity import ensure_identity, fleet_file
from gridmon.simulator.truth import TruthWriter
from gridmon.storage import db
from gridmon.storage.devices import count_known, register_devices

log = logging.getLogger(__name__)

ANOMALY_RATE = 0.001
"""Chance that a healthy demo reading starts a fault: a fault every few minutes in a fleet of ten."""
HISTORY_INTERVAL_S = 2.0  # the live simulator's mean interval (each device reports every 1–3 s)
HISTORY_FAULTS_PER_DEVICE_DAY = 1.0
BATCH = 20_000


@dataclass(frozen=True)
class Backfill:
    """What the first start wrote (`readings` 0 and `skipped` saying why when nothing)."""

    readings: int = 0
    devices: int = 0
    faults: int = 0
    seconds: float = 0.0
    skipped: str | None = None


def simulator_args(settings: Settings) -> list[str]:
    """`gridmon simulate` options of the demo."""
    return ["--demo", "--devices", str(settings.demo_devices), "--anomaly-rate", str(ANOMALY_RATE)]


def backfill(settings: Settings, data_dir: Path, *, now: float | None = None) -> Backfill:
    """Register the demo fleet and write its history, unless the database knows it already."""
    now = time.time() if now is None else now
    identity = ensure_identity(fleet_file(data_dir), now)
    count = settings.demo_devices
    profiles = fleet_profiles(identity, count)
    devices = demo_devices(identity, count)
    start = now - settings.demo_history_days * DAY_S
    with db.connection() as conn:
        if count_known(conn, [d.device_id for d in devices]):
            return Backfill(skipped="the database already has the demo fleet")
        register_devices(conn, {d.device_id: d.profile() for d in devices}, seen_at=start)
    if settings.demo_history_days <= 0:
        return Backfill(devices=count, skipped="GRIDMON_DEMO_HISTORY_DAYS is 0")
    started = time.monotonic()
    frame, truth = demo_history(
        profiles,
        start=start,
        end=now,
        interval_s=HISTORY_INTERVAL_S,
        seed=int(now),
        faults_per_device_day=HISTORY_FAULTS_PER_DEVICE_DAY,
        degradation=demo_degradation(identity, profiles),
    )
    log.info(
        "first start: writing %g days of simulated history for %d devices (%s readings) …",
        settings.demo_history_days,
        count,
        f"{len(frame):,}",
    )
    cached_limits.cache_clear()  # the profiles registered above set this fleet's limits
    columns = [frame[c].tolist() for c in ("device_id", "ts", "voltage", "current", "temperature")]
    rows = [[d, ts, v, i, t, None] for d, ts, v, i, t in zip(*columns, strict=True)]
    for k in range(0, len(rows), BATCH):
        store_batch(rows[k : k + BATCH])
    with TruthWriter(data_dir / "simulator" / "truth.jsonl") as writer:
        for fault in truth:
            writer.write(fault)
    seconds = time.monotonic() - started
    return Backfill(readings=len(rows), devices=count, faults=len(truth), seconds=round(seconds, 1))


def queue_first_analyses() -> list[str]:
    """Ask the analytics worker for a retrain and a maintenance prediction now (instead of at
    their first scheduled time). Returns the task ids."""
    from gridmon.celery import make_app

    app = make_app()  # after `up` set the environment: the right broker
    return [app.send_task(name).id for name in ("workers.training.retrain", "workers.maintenance.predict")]
