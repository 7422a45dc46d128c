"""Prometheus metrics of the pipeline.

The bridge is one process and serves its own registry (GRIDMON_BRIDGE_METRICS_PORT). Celery's
prefork pool is many processes: the worker's main process serves the pool's metrics in
prometheus_client's multiprocess mode (GRIDMON_WORKER_METRICS_PORT). Metric objects are created
lazily so that a forked pool process creates them after switching to multiprocess values.
The original design's names are kept: `mqtt_ingest_total`, `mqtt_ingest_errors_total`,
`validation_errors_total`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


@dataclass(frozen=True)
class BridgeMetrics:
    messages: Counter
    errors: Counter
    validation_errors: Counter
    dead_letters: Counter
    batches: Counter
    batch_size: Histogram
    handoff_seconds: Histogram
    connected: Gauge
    sparkplug_messages: Counter
    sparkplug_rebirths: Counter


@dataclass(frozen=True)
class IngestMetrics:
    stored: Counter
    duplicates: Counter
    dead_letters: Counter
    batch_size: Histogram
    latency: Histogram
    failures: Counter
    missing: Counter
    filled: Counter


@functools.lru_cache(maxsize=1)
def bridge() -> BridgeMetrics:
    """The bridge's metrics (created on first use)."""
    return BridgeMetrics(
        messages=Counter("mqtt_ingest", "MQTT messages received by the bridge"),
        errors=Counter("mqtt_ingest_errors", "Failures handing a batch to the Celery broker (retried)"),
        validation_errors=Counter("validation_errors", "Payloads rejected by validation"),
        dead_letters=Counter("gridmon_bridge_dead_letters", "Payloads sent to dead_letters, by reason", ["reason"]),
        batches=Counter("gridmon_bridge_batches", "Batches handed to the ingest task"),
        batch_size=Histogram("gridmon_bridge_batch_size", "Messages per handed-over batch", buckets=_BATCH_BUCKETS),
        handoff_seconds=Histogram(
            "gridmon_bridge_handoff_seconds", "Time for the Celery broker to accept a batch", buckets=_LATENCY_BUCKETS
        ),
        connected=Gauge("gridmon_bridge_mqtt_connected", "1 while connected to MQTT with a live network thread"),
        sparkplug_messages=Counter(
            "gridmon_sparkplug_messages", "Sparkplug B messages received, by message type", ["type"]
        ),
        sparkplug_rebirths=Counter(
            "gridmon_sparkplug_rebirth_requests", "Node Control/Rebirth commands sent to Sparkplug edge nodes"
        ),
    )


@functools.lru_cache(maxsize=1)
def ingest() -> IngestMetrics:
    """The ingest task's metrics (created on first use, in the pool process)."""
    return IngestMetrics(
        stored=Counter("gridmon_readings_stored", "Readings inserted into sensor_readings"),
        duplicates=Counter("gridmon_readings_duplicate", "Readings already stored (redelivery), skipped"),
        dead_letters=Counter("gridmon_dead_letters", "Dead letters stored, by reason", ["reason"]),
        batch_size=Histogram("gridmon_ingest_batch_size", "Readings per ingest task", buckets=_BATCH_BUCKETS),
        latency=Histogram(
            "gridmon_ingest_latency_seconds",
            "Reading timestamp (publish) to batch committed, per reading",
            buckets=_LATENCY_BUCKETS,
        ),
        failures=Counter("gridmon_ingest_failures", "Ingest attempts that failed (to be retried)"),
        missing=Counter(
            "gridmon_readings_missing",
            "Readings found missing by the devices' seq (net new per batch; late readings filling a gap "
            "are counted in gridmon_readings_missing_filled_total)",
        ),
        filled=Counter(
            "gridmon_readings_missing_filled",
            "Readings counted missing that arrived later and filled their gap (late delivery, or two "
            "workers storing a device's batches out of order)",
        ),
    )


QUARANTINE_JOBS = ("ingest", "safety", "scan")
JOB_FAILURE_REASONS = ("ingest_refused", "safety_failed", "scan_failed")


@functools.lru_cache(maxsize=1)
def _quarantine_counter() -> Counter:
    return Counter(
        "gridmon_quarantined_readings",
        "Readings a job could not process and set aside (dead-lettered, or left to the scan), by job and reason",
        ["job", "reason"],
    )


def count_quarantined(job: str, reason: str, n: int = 1) -> None:
    """Count readings a job set aside. Label values come from fixed sets (others become `other`)."""
    from gridmon.domain.readings import REASONS

    known = reason in REASONS or reason in JOB_FAILURE_REASONS
    _quarantine_counter().labels(job if job in QUARANTINE_JOBS else "other", reason if known else "other").inc(n)


@functools.lru_cache(maxsize=1)
def tasks() -> Counter:
    """Finished runs of gridmon's Celery tasks by task name and outcome (success, failure, retry, …);
    counted in the pool process (the worker's main process serves them)."""
    return Counter(
        "gridmon_celery_task_runs", "Celery task runs that finished, by task and outcome",
        ["task", "outcome"])


def count_task_run(task: str, state: str | None) -> None:
    """Count one finished run of a gridmon task (`workers.*`; other names are not counted)."""
    if task.startswith("workers."):
        counter = tasks()
        counter.labels(task, "failure")  # the series exists at 0 before a first failure, for increase()
        counter.labels(task, (state or "unknown").lower()).inc()


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """Observe many values at once: one increment per bucket instead of one per value.

    In multiprocess mode every increment is a locked write to a shared file; per reading that
    was ~4 µs, a third of the ingest task's own CPU. This does what `Histogram.observe` does for
    each value (add to the sum, count the first bucket whose bound is >= the value) in bulk, and
    falls back to `observe` when the client library's internals differ.
    """
    import numpy as np  # here, not at module level: the bridge imports this module and needs no numpy

    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds), np.asarray(values, dtype=float), side="left"))
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(int(count))
    total.inc(float(np.sum(values)))


def serve(port: int) -> None:
    """Serve this process's default registry on `port` (errors are logged, never fatal)."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port)
        log.info("metrics serving port=%d", port)
    except OSError as exc:
        log.warning("metrics port unavailable port=%d error=%s", port, exc)


def serve_multiprocess(port: int) -> None:
    """Serve the aggregated metrics of all pool processes (PROMETHEUS_MULTIPROC_DIR must be set)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(port, registry=registry)
        log.info("worker metrics serving port=%d dir=%s", port, os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    except OSError as exc:
        log.warning("worker metrics port unavailable port=%d error=%s", port, exc)


def use_multiprocess_values() -> None:
    """In a forked pool process: record metric values in the shared multiprocess directory."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue()
    ingest.cache_clear()
    _quarantine_counter.cache_clear()
    tasks.cache_clear()


def mark_dead(pid: int) -> None:
    """Tell the multiprocess collector a pool process is gone."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
