"""The FastAPI application factory: settings, middleware, error handlers, one router per area."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gridmon.api.access_log import AccessLogMiddleware, RequestMetrics
from gridmon.api.dashboard import router as dashboard_router
from gridmon.api.errors import install_error_handlers
from gridmon.api.prom import StateCollector
from gridmon.api.routes import (
    admin,
    alerts,
    bands,
    dead_letters,
    devices,
    health,
    metrics,
    models,
    predictions,
    readings,
)
from gridmon.config import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Operators' API of gridmon: devices and their profiles, readings, alerts, dead letters, model
versions, maintenance predictions, and admin actions.

**Access.** Write and admin routes need `Authorization: Bearer <GRIDMON_ADMIN_TOKEN>` (503 while
no admin token is configured). Read routes need `GRIDMON_READ_TOKEN` or the admin token when a read
token is configured, and are open otherwise. `/health`, `/ready` and `/metrics` are always open.

**Errors** are JSON: `{"detail": "…"}`, plus `errors` (the invalid parameters) on 422.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app for `settings` (default: the process settings). Each app has its own metrics registry."""
    settings = settings or get_settings()
    app = FastAPI(
        title="gridmon",
        version="1.0.0",
        description=DESCRIPTION,
        # `/devices/` is not `/devices`: an unknown path is a 404, never a redirect.
        redirect_slashes=False,
    )
    app.state.settings = settings
    registry = CollectorRegistry()
    registry.register(StateCollector())
    app.state.registry = registry
    install_error_handlers(app)
    app.add_middleware(AccessLogMiddleware, metrics=RequestMetrics.create(registry))
    for module in (health, metrics, devices, bands, readings, alerts, dead_letters, admin, models, predictions):
        app.include_router(module.router)
    app.include_router(dashboard_router)  # the operator dashboard at `/` (gridmon/api/dashboard), not in the schema
    if settings.admin_token is None:
        log.warning("GRIDMON_ADMIN_TOKEN is not set: admin routes answer 503")
    return app
