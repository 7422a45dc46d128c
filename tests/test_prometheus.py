"""gridmon's own metrics and the Prometheus files that watch them.

- `promtool` (Debian package `prometheus`) checks `deploy/prometheus/prometheus.yml` and runs the
  alerting rules' unit tests (`deploy/prometheus/tests/gridmon.test.yml`);
- every metric gridmon exports is listed here with its labels, and follows Prometheus naming
  (`_total` counters, units in names, no unbounded labels);
- every metric a rule reads is one gridmon exports (or `up`).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

from gridmon import metrics
from gridmon.config import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
FUTURE_METRICS: set[str] = set()

# name → label names, as exposed (counters with `_total`). Adding a metric means adding it here.
EXPECTED: dict[str, tuple[str, ...]] = {
    # bridge
    "mqtt_ingest_total": (),
    "mqtt_ingest_errors_total": (),
    "validation_errors_total": (),
    "gridmon_bridge_dead_letters_total": ("reason",),
    "gridmon_bridge_batches_total": (),
    "gridmon_bridge_batch_size": (),
    "gridmon_bridge_handoff_seconds": (),
    "gridmon_bridge_mqtt_connected": (),
    "gridmon_sparkplug_messages_total": ("type",),
    "gridmon_sparkplug_rebirth_requests_total": (),
    # workers
    "gridmon_readings_stored_total": (),
    "gridmon_readings_duplicate_total": (),
    "gridmon_dead_letters_total": ("reason",),
    "gridmon_ingest_batch_size": (),
    "gridmon_ingest_latency_seconds": (),
    "gridmon_ingest_failures_total": (),
    "gridmon_celery_task_runs_total": ("outcome", "task"),
    "gridmon_quarantined_readings_total": ("job", "reason"),
    "gridmon_readings_missing_total": (),
    "gridmon_readings_missing_filled_total": (),
    # API: tables, broker, settings, requests
    "gridmon_api_database_up": (),
    "gridmon_devices": ("status",),
    "gridmon_dead_letters_stored": ("reason",),
    "gridmon_open_alerts": ("severity", "state"),
    "gridmon_active_model_version": ("version",),
    "gridmon_active_model_trained_timestamp_seconds": (),
    "gridmon_scan_lag_seconds": (),
    "gridmon_outbox_pending_events": ("sink",),
    "gridmon_outbox_oldest_pending_age_seconds": ("sink",),
    "gridmon_device_readings_missing": ("device",),
    "gridmon_scan_interval_seconds": (),
    "gridmon_retrain_interval_seconds": (),
    "gridmon_api_broker_up": (),
    "gridmon_celery_queue_messages": ("queue",),
    "gridmon_celery_queue_oldest_message_age_seconds": ("queue",),
    "gridmon_api_requests_total": ("method", "route", "status"),
    "gridmon_api_request_duration_seconds": ("method", "route"),
}

# Labels whose values come from a small fixed set (reasons, states, queue and task names, route
# templates — never a device id, a topic or a raw path).
BOUNDED_LABELS = {"reason", "type", "outcome", "task", "job", "status", "severity", "state", "version", "sink",
                  "queue", "method", "route"}
# The one device label: a top-N gauge, at most GRIDMON_READINGS_MISSING_TOP_N series.
TOP_N_DEVICE_GAUGES = {"gridmon_device_readings_missing"}
TIME_WORDS = ("latency", "duration", "age", "lag", "interval", "timestamp", "handoff")


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus' (.ci/run does)")
    return exe


def test_scrape_config_is_valid():
    result = subprocess.run([_promtool(), "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alerting_rules_pass_their_unit_tests():
    result = subprocess.run([_promtool(), "test", "rules", "tests/gridmon.test.yml"], cwd=PROMETHEUS_DIR,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _families(db) -> list[Metric]:
    from fastapi.testclient import TestClient

    from gridmon.api.app import create_app

    # Labelled series appear with their first child: make one of each.
    metrics.bridge().dead_letters.labels("not_json")
    metrics.bridge().sparkplug_messages.labels("DDATA")
    metrics.ingest().dead_letters.labels("not_json")
    metrics.count_quarantined("ingest", "not_json", 0)
    metrics.count_task_run("workers.scanning.scan", "SUCCESS")
    app = create_app()
    db.execute("INSERT INTO scan_state (name, watermark) VALUES ('readings/0of1', now() - interval '30 seconds') ON CONFLICT DO NOTHING")
    with TestClient(app) as client:
        client.get("/health")  # a request, so the request metrics have a sample
    return list(REGISTRY.collect()) + list(app.state.registry.collect())


def exported(db) -> dict[str, tuple[str, ...]]:
    """name → label names of every gridmon metric, as Prometheus sees it."""
    out: dict[str, tuple[str, ...]] = {}
    for family in _families(db):
        if family.name.startswith(("python_", "process_", "platform_")):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        declared = getattr(family, "_labelnames", ())  # table gauges declare labels even with no sample
        labels = {k for s in family.samples for k in s.labels if k != "le"} | set(declared)
        out[name] = tuple(sorted(labels))
    return out


def test_metric_names_and_labels_follow_the_conventions(db):
    found = exported(db)
    assert found == EXPECTED
    for name, labels in found.items():
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|percent)(_|$)", name), f"{name}: use base units"
        if set(name.split("_")) & set(TIME_WORDS):
            assert name.endswith(("_seconds", "_seconds_total")), f"{name}: times are in seconds"
        bounded = BOUNDED_LABELS | ({"device"} if name in TOP_N_DEVICE_GAUGES else set())
        assert set(labels) <= bounded, f"{name}: unbounded label in {labels}"
    for family in _families(db):
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name


def test_every_metric_a_rule_reads_is_exported(db):
    rules = (PROMETHEUS_DIR / "rules" / "gridmon.yml").read_text()
    expressions = " ".join(re.findall(r"expr: (\|[^\n]*\n(?:\s{10}.*\n)+|.*)", rules))
    names = set(re.findall(r"\b((?:gridmon|mqtt)_[a-z0-9_]+)", expressions))
    assert names, "no metric found in the rules"
    assert names - set(exported(db)) == FUTURE_METRICS


def test_queue_depth_and_oldest_age_come_from_the_broker(redis_client):
    from gridmon.api.prom_broker import queue_stats
    from gridmon.celery import app
    from gridmon.config import get_settings

    url = str(get_settings().broker_url)
    assert queue_stats(url)["scan"] == (0, 0.0)
    app.send_task("workers.scanning.scan")  # nobody consumes this test broker's queue
    app.send_task("workers.scanning.scan")
    depth, age = queue_stats(url)["scan"]
    assert depth == 2 and age is not None and 0.0 <= age < 60.0
    assert queue_stats(url)["ingest"] == (0, 0.0)
    redis_client.flushdb()
