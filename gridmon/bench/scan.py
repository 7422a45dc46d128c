"""`gridmon bench scan`: the sharded scan's throughput with its database work, 1 and W processes.

A private database (`--database`, created and migrated) gets `--devices` devices × `--minutes`
of readings at one a second, loaded with COPY so they all wait as one backlog. Then the
backlog is scanned twice from scratch (watermarks and detector states reset in between):
once by one process scanning every shard in turn, once by `--workers` processes that split
the shards — each process runs `run_scan(shard=…)`, the function the Celery task calls.
Compilation happens in each process before the clock starts.

Reported: `readings_per_s` of each run (backlog readings / wall time from start to the last
shard done), `per_process_readings_per_s`, the speed-up, and `scored_once` (every reading
counted by exactly one shard, every device's state has read exactly its readings). JSON last.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from gridmon.config import get_settings
from gridmon.storage import readings
from gridmon.storage.db import migrate


def _rows(devices: int, n: int, seed: int) -> Iterator[tuple[str, datetime, float, float, float]]:
    rng = np.random.default_rng(seed)
    start = time.time() - n - 60.0
    for d in range(devices):
        v = 230 + 2.0 * rng.standard_normal(n)
        i = 4 + 0.5 * rng.standard_normal(n)
        t = 35 + 1.5 * rng.standard_normal(n)
        for k in range(n):
            yield (f"dev-{d:05d}", datetime.fromtimestamp(start + k, UTC), float(v[k]), float(i[k]), float(t[k]))


def _load(url: str, devices: int, minutes: float, seed: int) -> int:
    n = int(minutes * 60)
    with psycopg.connect(url, autocommit=True) as conn:
        readings.reset_scan_tables(conn, readings=True)
        readings.copy_plain_readings(conn, _rows(devices, n, seed))
    return devices * n


def _reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        readings.reset_scan_tables(conn, readings=False)


def _worker(url: str, shards: list[int], total_shards: int, ready: Any, go: Any, out: Any) -> None:
    os.environ["GRIDMON_DATABASE_URL"] = url
    os.environ["GRIDMON_SCAN_SHARDS"] = str(total_shards)
    os.environ["GRIDMON_SCAN_SAFETY_LAG_S"] = "0"
    os.environ["GRIDMON_SCAN_INITIAL_LOOKBACK_S"] = "86400"
    get_settings.cache_clear()
    from gridmon.detection.stream.run import run_device
    from gridmon.detection.stream.state import DeviceState
    from gridmon.jobs.scan import run_scan

    run_device(DeviceState.new(["a"]), np.arange(3.0), np.ones((3, 1)))  # compile before the clock
    ready.put(os.getpid())
    go.wait()
    readings = 0
    for shard in shards:
        readings += run_scan(shard=shard, drain=False).readings
    out.put((readings, time.perf_counter()))


def _run(url: str, processes: int, shards: int) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    parts = [list(range(shards))[p::processes] for p in range(processes)]
    procs = [ctx.Process(target=_worker, args=(url, part, shards, ready, go, out)) for part in parts]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=300)
    started = time.perf_counter()
    go.set()
    results = [out.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    return max(t for _, t in results) - started, sum(r for r, _ in results)


def _check(url: str, devices: int, per_device: int) -> bool:
    with psycopg.connect(url) as conn:
        scanned, states, low, high = readings.scan_totals(conn)
    return scanned == devices * per_device and (states, low, high) == (devices, per_device, per_device)


def run_scan_bench(
    *, database_url: str, devices: int, minutes: float, workers: int, shards: int, seed: int = 0
) -> dict[str, Any]:
    """Measure as the module docstring says; returns the JSON-ready report."""
    migrate(database_url)
    total = _load(database_url, devices, minutes, seed)
    per_device = total // devices
    runs = {}
    for processes in (1, workers):
        _reset(database_url)
        seconds, readings = _run(database_url, processes, shards)
        runs[processes] = {
            "seconds": seconds,
            "readings": readings,
            "readings_per_s": readings / seconds,
            "per_process_readings_per_s": readings / seconds / processes,
            "scored_once": readings == total and _check(database_url, devices, per_device),
        }
    one, many = runs[1], runs[workers]
    return {
        "devices": devices,
        "readings": total,
        "shards": shards,
        "one_process": one,
        "processes": workers,
        "many_processes": many,
        "speedup": many["readings_per_s"] / one["readings_per_s"],
    }
