"""API-side Prometheus gauges, computed from the database when scraped.

The bridge (GRIDMON_BRIDGE_METRICS_PORT) and the workers (GRIDMON_WORKER_METRICS_PORT) serve the
pipeline's counters; the API's `/metrics` serves the state that lives in tables: unresolved
alerts, stored dead letters by reason, devices online/stale, the active model version, how far the
scan trails the clock, the outbox rows each sink has not delivered, the scan and retrain intervals
(so alerting rules can compare with them), the readings missing per device for the top-N devices by the devices' `seq`
(`gridmon_device_readings_missing`; the fleet counter `gridmon_readings_missing_total` is the workers'),
plus the API's own request counters. The Celery queue
depths come from `gridmon.api.prom_broker`. Results are cached for a few seconds so a tight scrape interval (or
several scrapers) costs the database one round of queries, not one per scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import sqlalchemy.exc
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gridmon.api.params import STALE_AFTER_S
from gridmon.config import get_settings
from gridmon.jobs.publish import sink_names
from gridmon.jobs.scan import LEGACY_SCAN
from gridmon.storage import alerts as alert_store
from gridmon.storage import dead_letters, model_versions, outbox, scan_state, seq_gaps
from gridmon.storage import devices as device_store
from gridmon.storage.db import connection, table_exists

log = logging.getLogger(__name__)

CACHE_S = 5.0

def _families(conn: psycopg.Connection) -> list[Metric]:
    devices = GaugeMetricFamily(
        "gridmon_devices", f"Known devices: online = reported within {STALE_AFTER_S:g} s", labels=["status"]
    )
    online, stale = device_store.count_online_stale(conn, stale_after=timedelta(seconds=STALE_AFTER_S))
    devices.add_metric(["online"], online)
    devices.add_metric(["stale"], stale)
    out: list[Metric] = [devices]

    dead = GaugeMetricFamily("gridmon_dead_letters_stored", "Dead letters in the table, by reason", labels=["reason"])
    for reason, count in dead_letters.count_by_reason(conn):
        dead.add_metric([reason], count)
    out.append(dead)

    if table_exists(conn, "alerts"):
        alerts = GaugeMetricFamily(
            "gridmon_open_alerts",
            "Unresolved alerts by state (open/acknowledged) and severity",
            labels=["state", "severity"],
        )
        for state, severity, count in alert_store.count_unresolved(conn):
            alerts.add_metric([state, severity], count)
        out.append(alerts)

    if table_exists(conn, "model_versions"):
        info = GaugeMetricFamily(
            "gridmon_active_model_version",
            "The active anomaly model version (value 1, id in the label)",
            labels=["version"],
        )
        trained = GaugeMetricFamily(
            "gridmon_active_model_trained_timestamp_seconds", "When the active anomaly model was trained"
        )
        active = model_versions.active_model_info(conn)
        if active is not None:
            info.add_metric([active[0]], 1)
            trained.add_metric([], active[1])
        out.extend((info, trained))

    if table_exists(conn, "scan_state"):
        lag = scan_state.lag_seconds(conn, LEGACY_SCAN)  # the slowest shard
        if lag is not None:
            out.append(
                GaugeMetricFamily("gridmon_scan_lag_seconds", "How far the slowest scan shard trails the clock", lag)
            )

    if table_exists(conn, "alert_outbox"):
        pending = GaugeMetricFamily(
            "gridmon_outbox_pending_events", "Outbox rows a sink has not delivered yet", labels=["sink"]
        )
        oldest = GaugeMetricFamily(
            "gridmon_outbox_oldest_pending_age_seconds",
            "Age of the oldest row a sink has not delivered",
            labels=["sink"],
        )
        for sink, count, age in outbox.pending_stats(conn, sink_names()):
            pending.add_metric([sink], count)
            oldest.add_metric([sink], age)
        out.extend((pending, oldest))

    if table_exists(conn, "reading_gaps"):
        out.extend(_missing_families(conn))
    return out


def _missing_families(conn: psycopg.Connection) -> list[Metric]:
    # The fleet's counter (`gridmon_readings_missing_total`) is the ingest workers'; a device
    # label is bounded here by the top-N setting.
    top = GaugeMetricFamily(
        "gridmon_device_readings_missing",
        "Readings missing per device, for the GRIDMON_READINGS_MISSING_TOP_N devices missing the most",
        labels=["device"],
    )
    limit = get_settings().readings_missing_top_n
    for device_id, missing in seq_gaps.top_missing(conn, limit) if limit else []:
        top.add_metric([device_id], missing)
    return [top]


def _intervals() -> list[Metric]:
    settings = get_settings()
    return [
        GaugeMetricFamily("gridmon_scan_interval_seconds", "GRIDMON_SCAN_INTERVAL_S", settings.scan_interval_s),
        GaugeMetricFamily(
            "gridmon_retrain_interval_seconds", "GRIDMON_RETRAIN_INTERVAL_S", settings.retrain_interval_s
        ),
    ]


class StateCollector(Collector):
    """Gauges read from the tables at scrape time (cached for CACHE_S)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = float("-inf")
        self._ok = True

    def _refresh(self) -> None:
        try:
            with connection() as conn:
                self._cached = _families(conn)
            self._ok = True
        except (psycopg.Error, sqlalchemy.exc.SQLAlchemyError) as exc:
            # A scrape must still answer (with the up-gauge at 0) when the database is away.
            log.warning("metrics state query failed error=%s", str(exc).splitlines()[0] if str(exc) else exc)
            self._cached = []
            self._ok = False
        self._cached_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._cached_at >= CACHE_S:
                self._refresh()
            families, ok = list(self._cached), self._ok
        up = GaugeMetricFamily("gridmon_api_database_up", "1 when the last state query succeeded")
        up.add_metric([], 1 if ok else 0)
        yield up
        yield from families
        yield from _intervals()
