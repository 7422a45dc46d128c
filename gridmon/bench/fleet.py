"""`gridmon bench fleet`: the whole system on a private stack under a steady fleet load.

`--devices` devices each report once every `--interval` seconds for `--minutes` (one paced QoS 1
publisher process, `devices / interval` readings/s) → Mosquitto → bridge → ingest worker(s) →
PostgreSQL; beat enqueues the sharded scan every `--scan-interval` seconds and `--scan-workers`
worker processes on the `scan` queue score it; every `--predict-interval` seconds the benchmark
enqueues a maintenance cycle exactly as beat's `predict_all` does (one `predict_shard` per shard,
one maintenance worker process) and times it; the API serves `/devices` and a device's chart to
a probe. After the publisher is done, the run waits until every reading is stored and scored.

Reported (JSON last):
- published (acknowledged by the broker), stored, lost = published − stored, their rates;
- scan lag p50/p99/max: per reading, from `ingested_at` (stored) to the first observation of
  its shard's watermark past it (scored; watermarks observed every 0.2 s with the database
  clock, so a lag is at most 0.2 s too long), and readings never scored;
- scan throughput: readings scored per second of the run, per scan worker process, and per
  CPU second of the scan workers (what one busy process can do);
- maintenance cycle time (enqueue → last shard's result), each cycle and the longest, and the
  shards that expired unrun (a shard task expires after one predict interval, as beat sets it);
- API latency p50/p99 of `/devices` and of one device's chart;
- `alerts`: alert rows at the end, of any kind (the load is healthy; once the publisher stops,
  devices fall silent, so a long wait for the scan to catch up ends with silent-device alerts);
- CPU seconds, cores and share of the total per process kind (bench's own process excepted;
  `database`: the PostgreSQL server processes connected to the benchmark's database), and what
  one busy process of each kind handles: stored readings per CPU second of that kind
  (`readings_per_cpu_s`), device predictions per CPU second of the maintenance worker.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from gridmon.bench.fleet_probe import ApiProbe, CpuTracker, Watcher, percentile, scan_lags
from gridmon.bench.fleet_stack import FleetOptions, FleetStack
from gridmon.jobs.scan import LEGACY_SCAN, shard_name
from gridmon.simulator.device import device_name
from gridmon.storage import bench_fleet
from gridmon.storage.readings import ingest_latency_ms

log = logging.getLogger(__name__)

_LAG_RESOLUTION_S = 0.1


@dataclass(frozen=True)
class FleetParams:
    """The benchmark's inputs (see the CLI options)."""

    devices: int
    interval_s: float
    minutes: float
    scan_workers: int
    scan_interval_s: float = 5.0
    predict_interval_s: float = 60.0
    shards: int = 16
    ingest_workers: int = 2

    def __post_init__(self) -> None:
        for name in ("devices", "scan_workers", "shards", "ingest_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("interval_s", "minutes", "scan_interval_s", "predict_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    @property
    def rate(self) -> float:
        return self.devices / self.interval_s

    @property
    def readings(self) -> int:
        return round(self.rate * self.minutes * 60)


def _publish(port: int, count: int, devices: int, rate: float, out: Any) -> None:
    """The load publisher (its own process: it needs most of a core at fleet rates)."""
    from gridmon.simulator.load import make_load_payloads, publish_readings

    stats = publish_readings(
        make_load_payloads(count, devices=devices, seed=7),
        host="127.0.0.1",
        port=port,
        rate=rate,
        client_id="gridmon-bench-fleet",
        flush_timeout=300.0,
    )
    out.put((stats.count, stats.seconds, stats.dropped))


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _wait_scored(stack: FleetStack, watcher: Watcher, names: list[str], timeout: float) -> bool:
    """Until every shard's watermark is past the newest stored reading."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        newest = bench_fleet.newest_ingested(conn)
    if newest is None:
        return True
    target = newest.timestamp()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watcher.observations:
            marks = watcher.observations[-1][1]
            if all(marks.get(n, float("-inf")) > target for n in names):
                return True
        time.sleep(0.2)
    return False


def run_fleet_bench(*, database_url: str, params: FleetParams) -> dict[str, Any]:
    """Run as the module docstring says; returns the JSON-ready report."""
    options = FleetOptions(
        scan_workers=params.scan_workers,
        scan_interval_s=params.scan_interval_s,
        shards=params.shards,
        ingest_workers=params.ingest_workers,
    )
    stack = FleetStack(database_url=database_url, options=options, client_id="gridmon-bench-fleet-bridge")
    names = [shard_name(s, params.shards) for s in range(params.shards)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    publisher: Any = None
    watcher: Watcher | None = None
    probe: ApiProbe | None = None
    cycles: list[tuple[float, int]] = []
    try:
        stack.start()
        stack.start_bridge()
        stack.wait_flowing()
        stack.reset()
        stack.start_analytics()
        stack.start_beat()  # before the CPU accounting starts: its start-up is not the load's
        publisher = ctx.Process(
            target=_publish, args=(stack.mosquitto.port, params.readings, params.devices, params.rate, out)
        )

        def roots() -> dict[str, list[int]]:
            kinds = stack.pids()
            if publisher is not None and publisher.pid is not None:
                kinds["publisher"] = [publisher.pid]
            kinds["database"] = list(watcher.backends) if watcher is not None else []
            return kinds

        cpu = CpuTracker(roots)
        watcher = Watcher(database_url, LEGACY_SCAN, cpu)
        probe = ApiProbe(stack.api_url, device_name(0))
        dup_before = stack.worker_counter("gridmon_readings_duplicate_total")
        started = time.time()
        publisher.start()
        watcher.start()
        probe.start()
        next_cycle = time.monotonic() + params.predict_interval_s
        while publisher.is_alive():
            if time.monotonic() >= next_cycle:
                cycles.append(stack.predict_cycle(params.shards, expires=params.predict_interval_s))
                next_cycle += params.predict_interval_s
            publisher.join(0.2)
        if publisher.exitcode != 0:
            raise RuntimeError(f"the load publisher exited with code {publisher.exitcode}; logs in {stack.workdir}")
        published, publish_s, dropped = out.get(timeout=60)
        stored, seen = stack.wait_for_rows(published, max(60.0, published / 2000.0))
        if not cycles:
            cycles.append(stack.predict_cycle(params.shards, expires=params.predict_interval_s))
        all_scored = _wait_scored(stack, watcher, names, timeout=3 * params.scan_interval_s + 120.0)
        probe.stop()
        watcher.stop()
        wall = time.time() - started
        duplicates = int(stack.worker_counter("gridmon_readings_duplicate_total") - dup_before)
        with psycopg.connect(database_url, autocommit=True) as conn:
            histogram = bench_fleet.ingested_histogram(conn, params.shards, _LAG_RESOLUTION_S)
            scanned = bench_fleet.scanned_total(conn, LEGACY_SCAN)
            lat50, lat99 = ingest_latency_ms(conn)
            alerts = bench_fleet.alert_count(conn)
            predicted = bench_fleet.predicted_devices(conn)
            predictions = bench_fleet.prediction_rows(conn)
    finally:
        try:
            for thread in (probe, watcher):
                if thread is not None and thread.is_alive():
                    thread.stop()
            if publisher is not None and publisher.is_alive():
                publisher.terminate()
        finally:
            stack.stop()  # whatever failed above, no process of the private stack outlives the run
    assert watcher is not None and probe is not None
    lags, weights, unscored = scan_lags(histogram, watcher.observations, names)
    cpu_s = cpu.by_kind()
    cpu_total = sum(cpu_s.values()) or 1.0
    scan_cpu = cpu_s.get("scan_worker", 0.0)
    lag99 = percentile(lags, 99, weights)
    return {
        "devices": params.devices,
        "interval_s": params.interval_s,
        "minutes": params.minutes,
        "scan_workers": params.scan_workers,
        "scan_interval_s": params.scan_interval_s,
        "predict_interval_s": params.predict_interval_s,
        "shards": params.shards,
        "ingest_workers": params.ingest_workers,
        "target_rate": round(params.rate, 1),
        "published": published,
        "publisher_dropped": dropped,
        "stored": stored,
        "lost": published - stored,
        "duplicates": duplicates,
        "publish_rate": round(published / publish_s, 1) if publish_s > 0 else 0.0,
        "stored_rate": round(stored / (seen - started), 1) if seen > started else 0.0,
        "ingest_latency_p50_ms": _r(lat50, 1),
        "ingest_latency_p99_ms": _r(lat99, 1),
        "scan_lag_p50_s": _r(percentile(lags, 50, weights)),
        "scan_lag_p99_s": _r(lag99),
        "scan_lag_max_s": _r(float(lags.max()) if lags.size else None),
        "scan_lag_p99_intervals": _r(lag99 / params.scan_interval_s if lag99 is not None else None),
        "unscored": unscored,
        "all_scored": all_scored and unscored == 0,
        "scanned": scanned,
        "scan_readings_per_s": round(scanned / wall, 1),
        "scan_readings_per_worker_s": round(scanned / wall / params.scan_workers, 1),
        "scan_readings_per_cpu_s": round(scanned / scan_cpu, 1) if scan_cpu > 0 else None,
        "maintenance_cycles_s": [round(c, 2) for c, _ in cycles],
        "maintenance_cycle_s": round(max(c for c, _ in cycles), 2),
        "maintenance_cycle_fraction": round(max(c for c, _ in cycles) / params.predict_interval_s, 3),
        "maintenance_expired_shards": sum(e for _, e in cycles),
        "maintenance_devices": predicted,
        "api_devices_p50_ms": _r(percentile(probe.latencies["devices"], 50), 1),
        "api_devices_p99_ms": _r(percentile(probe.latencies["devices"], 99), 1),
        "api_chart_p50_ms": _r(percentile(probe.latencies["chart"], 50), 1),
        "api_chart_p99_ms": _r(percentile(probe.latencies["chart"], 99), 1),
        "api_requests": {k: len(v) for k, v in probe.latencies.items()},
        "api_errors": probe.errors,
        "alerts": alerts,
        "wall_s": round(wall, 1),
        "cpu_seconds": {k: round(v, 1) for k, v in sorted(cpu_s.items())},
        "cpu_cores": {k: round(v / wall, 3) for k, v in sorted(cpu_s.items())},
        "cpu_share": {k: round(v / cpu_total, 3) for k, v in sorted(cpu_s.items())},
        "lag_readings": int(np.sum(weights)),
        # What one busy process of a kind handles: stored readings per CPU second of that kind
        # (the maintenance worker: device predictions per CPU second).
        "readings_per_cpu_s": {
            k: round(stored / v, 1) for k, v in sorted(cpu_s.items()) if v > 0 and k != "maintenance_worker"
        },
        "predictions_per_cpu_s": _rate(predictions, cpu_s.get("maintenance_worker", 0.0)),
    }
