"""Celery beat schedule: which periodic task runs how often (queues come from the app's routes).

It imports only the settings: the Celery app (`gridmon.celery`, the wiring layer) imports it,
never the other way round, and every interval is a setting.

Entries refer to tasks by name; `tests/test_task_registry.py` pins those names so a rename cannot
silently orphan a beat entry. Each periodic task expires before its next run, so a backlog after
an outage runs once, not once per missed tick.
"""

from __future__ import annotations

from typing import Any

from gridmon.config import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat schedule for these settings (areas add entries as their tasks exist)."""
    schedule: dict[str, dict[str, Any]] = {
        "beat-heartbeat": {
            "task": "workers.system.beat_heartbeat",
            "schedule": settings.heartbeat_interval_s,
            "options": {"expires": settings.heartbeat_interval_s},
        },
        "maintenance-predict": {
            "task": "workers.maintenance.predict_all",
            "schedule": settings.predict_interval_s,
            "options": {"expires": settings.predict_interval_s},
        },
    }
    # --- detection and alerts: scan every minute, retrain hourly (both expire before the next run)
    schedule["anomaly-scan"] = {
        "task": "workers.scanning.scan",
        "schedule": settings.scan_interval_s,
        "options": {"expires": settings.scan_interval_s},
    }
    schedule["model-retrain"] = {
        "task": "workers.training.retrain",
        "schedule": settings.retrain_interval_s,
        "options": {"expires": settings.retrain_interval_s},
    }
    # --- history rollups (plain PostgreSQL; a no-op on TimescaleDB, whose policies refresh them)
    schedule["rollups-refresh"] = {
        "task": "workers.maintenance.refresh_rollups",
        "schedule": settings.rollup_interval_s,
        "options": {"expires": settings.rollup_interval_s},
    }
    return schedule
