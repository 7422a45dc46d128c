"""Task names are part of the wire format: beat entries and queued messages refer to them.

Renaming a task silently orphans both, so the registered names are pinned here.
"""

from __future__ import annotations

from beat_schedule import build_schedule
from gridmon.celery import QUEUES, app
from gridmon.config import get_settings

EXPECTED_TASKS = {
    "workers.ingest.ingest_batch",
    "workers.system.beat_heartbeat",
    "workers.scanning.scan",
    "workers.scanning.scan_shard",
    "workers.scanning.publish_alerts",
    "workers.training.retrain",
    "workers.maintenance.predict",
    "workers.maintenance.predict_all",
    "workers.maintenance.predict_shard",
    "workers.maintenance.refresh_rollups",
}


def registered() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_registered_task_names_are_pinned() -> None:
    assert registered() == EXPECTED_TASKS


def test_every_beat_entry_names_a_registered_task() -> None:
    names = registered()
    for entry, spec in build_schedule(get_settings()).items():
        assert spec["task"] in names, entry
        assert spec.get("options", {}).get("expires"), f"{entry} must expire before its next run"


def test_queues_by_kind_of_work() -> None:
    assert set(QUEUES) == {"ingest", "scan", "ml", "maintenance"}
    routes = app.conf.task_routes
    assert routes["workers.ingest.*"]["queue"] == "ingest"
    assert routes["workers.training.*"]["queue"] == "ml"
    assert routes["workers.maintenance.*"]["queue"] == "maintenance"
    assert routes["workers.scanning.*"]["queue"] == "scan"


def test_ingest_task_options() -> None:
    task = app.tasks["workers.ingest.ingest_batch"]
    assert task.acks_late and task.reject_on_worker_lost
    assert task.max_retries is None  # a batch is never dropped for a transient database error
    assert app.conf.task_serializer == "orjson"
