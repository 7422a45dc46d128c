"""What the fleet benchmark watches while it runs: CPU per process kind, scan watermarks (for the
scan lag) and the API's latency.

- `CpuTracker`: user + system CPU seconds of each kind's processes and their children, from
  /proc through psutil. A process seen at the first sample counts from there; one started later
  counts whole (it started during the run).
- `Watcher`: a thread that every `period_s` reads the scan watermarks with the database clock
  (a reading of shard s stored at t is scored at the first observation whose watermark of s is
  past t: that observation time bounds the scoring time from above by at most `period_s`) and
  samples the CPU tracker.
- `ApiProbe`: a thread that requests `/devices` and one device's chart (one hour in one-minute
  buckets, what the dashboard draws for a device) in turn and records each latency.
- `scan_lags`: the lag of every reading from a histogram of `ingested_at` and the observations.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import numpy as np
import psutil
import psycopg

from gridmon.storage import bench_fleet

log = logging.getLogger(__name__)


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class CpuTracker:
    """CPU seconds per kind of process between the first and the last `sample()`."""

    def __init__(self, roots: Callable[[], dict[str, list[int]]]) -> None:
        self._roots = roots
        self._started = time.time()
        self._base: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._first = True
        self._lock = threading.Lock()

    def sample(self) -> None:
        seen: dict[tuple[str, int], float] = {}
        for kind, pids in self._roots().items():
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                for proc in procs:
                    try:
                        seen[(kind, proc.pid)] = _cpu_seconds(proc)
                        created = proc.create_time()
                    except psutil.Error:
                        continue
                    key = (kind, proc.pid)
                    if key not in self._base:
                        self._base[key] = seen[key] if self._first or created < self._started else 0.0
        with self._lock:
            self._last.update(seen)
            self._first = False

    def by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        with self._lock:
            for key, last in self._last.items():
                totals[key[0]] = totals.get(key[0], 0.0) + max(last - self._base.get(key, last), 0.0)
        return totals


class Watcher(threading.Thread):
    """Observes the scan watermarks (database clock) and samples CPU every `period_s`."""

    def __init__(self, database_url: str, prefix: str, cpu: CpuTracker, period_s: float = 0.2) -> None:
        super().__init__(name="fleet-watcher", daemon=True)
        self.database_url = database_url
        self.prefix = prefix
        self.cpu = cpu
        self.period_s = period_s
        self.observations: list[tuple[float, dict[str, float]]] = []
        self.backends: list[int] = []
        self._halt = threading.Event()

    def run(self) -> None:
        next_cpu = 0.0
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._halt.is_set():
                now, marks = bench_fleet.watermarks(conn, self.prefix)
                self.observations.append((now.timestamp(), {k: v.timestamp() for k, v in marks.items()}))
                if time.monotonic() >= next_cpu:
                    self.backends = bench_fleet.backend_pids(conn)
                    self.cpu.sample()
                    next_cpu = time.monotonic() + 1.0
                self._halt.wait(self.period_s)
            self.cpu.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


class ApiProbe(threading.Thread):
    """Requests `/devices` and one device's chart alternately, every `period_s`."""

    def __init__(self, base_url: str, device_id: str, period_s: float = 0.5) -> None:
        super().__init__(name="fleet-api-probe", daemon=True)
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.period_s = period_s
        self.latencies: dict[str, list[float]] = {"devices": [], "chart": []}
        self.errors: dict[str, int] = {"devices": 0, "chart": 0}
        self.not_found = 0  # chart requests before the device's first reading was stored
        self._halt = threading.Event()

    def _chart_path(self) -> str:
        start = datetime.fromtimestamp(time.time() - 3600).astimezone().isoformat()
        return f"/devices/{quote(self.device_id)}/readings?bucket=1m&start={quote(start)}"

    def _get(self, kind: str, path: str) -> None:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and kind == "chart" and not self.latencies[kind]:
                self.not_found += 1
                return
            self.errors[kind] += 1
            log.warning("API probe %s failed: %s", path, exc)
            return
        except OSError as exc:
            self.errors[kind] += 1
            log.warning("API probe %s failed: %s", path, exc)
            return
        self.latencies[kind].append((time.perf_counter() - started) * 1000.0)

    def run(self) -> None:
        while not self._halt.is_set():
            self._get("devices", "/devices")
            self._get("chart", self._chart_path())
            self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)


def percentile(values: list[float] | np.ndarray, q: float, weights: np.ndarray | None = None) -> float | None:
    """The q-th percentile (0–100), weighted when `weights` is given; None when empty."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    if weights is None:
        return float(np.percentile(arr, q))
    order = np.argsort(arr)
    cum = np.cumsum(weights[order])
    k = int(np.searchsorted(cum, q / 100.0 * cum[-1]))
    return float(arr[order][min(k, arr.size - 1)])


def scan_lags(
    histogram: list[tuple[int, float, float, int]],
    observations: list[tuple[float, dict[str, float]]],
    shard_names: list[str],
) -> tuple[np.ndarray, np.ndarray, int]:
    """(lag s per histogram slot, readings per slot, readings never seen scored).

    A slot's readings are taken as stored at the slot's newest `ingested_at` (the slot is short)
    and scored at the first observation whose watermark of their shard is past it."""
    lags: list[float] = []
    counts: list[int] = []
    unscored = 0
    per_shard: dict[int, tuple[list[float], list[float]]] = {}
    for shard, name in enumerate(shard_names):
        times, marks = [], []
        best = float("-inf")
        for at, shard_marks in observations:
            mark = shard_marks.get(name)
            if mark is not None and mark > best:  # watermarks only move forward
                best = mark
                times.append(at)
                marks.append(mark)
        per_shard[shard] = (times, marks)
    for shard, _slot, newest, n in histogram:
        times, marks = per_shard.get(shard, ([], []))
        k = bisect.bisect_right(marks, newest)
        if k >= len(marks):
            unscored += n
            continue
        lags.append(max(times[k] - newest, 0.0))
        counts.append(n)
    return np.asarray(lags), np.asarray(counts, dtype=float), unscored
