"""`gridmon bench ingest`: the real path publisher → Mosquitto → bridge → Celery → PostgreSQL.

Two phases on a private stack (see `stack.py`):
- live: the bridge runs, N readings are published (at `rate`, or as fast as the publisher can),
  each stamped when it is published; e2e_rate = N / (first publish → last row seen stored);
  latency per reading = ingested_at (row written) − its timestamp.
- drain: the bridge is stopped (its persistent session stays), N readings are published and
  queued by Mosquitto, the bridge is started; drain_rate = N / (bridge process start → last row
  seen stored). This measures the pipeline without the publisher.
copy_limit_rate: a plain COPY of the same N rows into a scratch table, same database, same run.

With `sparkplug` the same readings travel as Sparkplug B messages of one edge node (an NBIRTH,
then a DBIRTH per device's first reading and DDATA by alias for the rest: one message per
reading) to a bridge subscribed to the group, so the two formats can be compared.
With `seq` every JSON payload carries its device's reading counter, so ingest also does the gap
accounting (`gridmon.storage.seq_gaps`): compare with and without to see what that costs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from gridmon.bench.stack import IngestStack
from gridmon.simulator.load import make_load_payloads, publish_readings
from gridmon.simulator.sparkplug import sparkplug_load
from gridmon.storage.readings import ingest_latency_ms, time_plain_copy
from gridmon.storage.timescale import is_hypertable

log = logging.getLogger(__name__)

SPARKPLUG_GROUP = "gridmon-bench"


def _payloads(n: int, devices: int, seed: int, sparkplug: bool, seq: bool = False) -> Iterator[tuple[str, bytes]]:
    payloads = make_load_payloads(n, devices=devices, seed=seed, seq=seq and not sparkplug)
    return sparkplug_load(payloads, group=SPARKPLUG_GROUP, node=f"bench-{seed}") if sparkplug else payloads


@dataclass
class PhaseResult:
    published: int
    stored: int
    duplicates: int
    publish_rate: float
    rate: float


def _settle_timeout(n: int) -> float:
    return max(60.0, n / 2000.0)


def _latencies(database_url: str) -> tuple[float, float]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return ingest_latency_ms(conn)


def live_phase(
    stack: IngestStack, n: int, rate: float | None, devices: int, sparkplug: bool = False, seq: bool = False
) -> tuple[PhaseResult, float, float]:
    stack.truncate()
    dup_before = stack.worker_counter("gridmon_readings_duplicate_total")
    started = time.time()
    stats = publish_readings(
        _payloads(n, devices, 1, sparkplug, seq),
        host="127.0.0.1",
        port=stack.mosquitto.port,
        rate=rate,
        client_id="gridmon-bench-live",
    )
    stored, seen = stack.wait_for_rows(n, _settle_timeout(n))
    p50, p99 = _latencies(stack.database_url)
    dups = int(stack.worker_counter("gridmon_readings_duplicate_total") - dup_before)
    result = PhaseResult(n, stored, dups, stats.rate, stored / (seen - started) if seen > started else 0.0)
    return result, p50, p99


def drain_phase(stack: IngestStack, n: int, devices: int, sparkplug: bool = False, seq: bool = False) -> PhaseResult:
    stack.stop_bridge()
    stack.truncate()
    dup_before = stack.worker_counter("gridmon_readings_duplicate_total")
    stats = publish_readings(
        _payloads(n, devices, 2, sparkplug, seq),
        host="127.0.0.1",
        port=stack.mosquitto.port,
        client_id="gridmon-bench-drain",
    )
    started = time.time()
    stack.start_bridge()
    stored, seen = stack.wait_for_rows(n, _settle_timeout(n))
    dups = int(stack.worker_counter("gridmon_readings_duplicate_total") - dup_before)
    return PhaseResult(n, stored, dups, stats.rate, stored / (seen - started) if seen > started else 0.0)


def copy_limit(database_url: str, n: int, devices: int) -> float:
    """Rows/s of one COPY of n readings into a scratch table shaped like sensor_readings."""
    rows = []
    base = time.time()
    for k in range(n):
        rows.append((f"sensor_{k % devices:04d}", base + k * 0.001, 230.0, 4.0, 35.0, None))
    with psycopg.connect(database_url) as conn:
        return n / time_plain_copy(conn, rows)


def database_kind(database_url: str) -> str:
    """`timescaledb` when the migrated readings table is a hypertable, else `postgresql`."""
    with psycopg.connect(database_url, autocommit=True) as conn:

        def scalar(sql: str) -> object:
            row = conn.execute(sql.encode()).fetchone()
            return None if row is None else row[0]

        return "timescaledb" if is_hypertable(scalar, "sensor_readings") else "postgresql"


def run_ingest_bench(
    *,
    database_url: str,
    readings: int,
    rate: float | None,
    devices: int,
    workers: int,
    broker_url: str | None = None,
    sparkplug: bool = False,
    seq: bool = False,
) -> dict[str, Any]:
    extra = {"GRIDMON_SPARKPLUG_GROUP": SPARKPLUG_GROUP} if sparkplug else {}
    stack = IngestStack(database_url=database_url, workers=workers, broker_url=broker_url, extra_env=extra)
    try:
        stack.start()
        kind = database_kind(database_url)
        stack.start_bridge()
        stack.wait_flowing()
        live, p50, p99 = live_phase(stack, readings, rate, devices, sparkplug, seq)
        drain = drain_phase(stack, readings, devices, sparkplug, seq)
        limit = copy_limit(database_url, readings, devices)
    finally:
        stack.stop()
    return {
        "database": kind,
        "readings": readings,
        "stored": live.stored + drain.stored,
        "lost": (live.published - live.stored) + (drain.published - drain.stored),
        "duplicates": live.duplicates + drain.duplicates,
        "publish_rate": round(live.publish_rate, 1),
        "e2e_rate": round(live.rate, 1),
        "drain_rate": round(drain.rate, 1),
        "p50_latency_ms": round(p50, 1),
        "p99_latency_ms": round(p99, 1),
        "copy_limit_rate": round(limit, 1),
        "phases": {
            "live": {"stored": live.stored, "lost": live.published - live.stored, "duplicates": live.duplicates},
            "drain": {"stored": drain.stored, "lost": drain.published - drain.stored, "duplicates": drain.duplicates},
        },
        "workers": workers,
        "devices": devices,
        "rate_target": rate,
        "format": "sparkplug" if sparkplug else "json",
        "seq": seq and not sparkplug,
    }
