"""The FastAPI application factory: settings, middleware, error handlers, one router per area."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gridmon.api import docs
from gridmon.api.access_log import AccessLogMiddleware, RequestMetrics
from gridmon.api.dashboard.router import router as dashboard_router
from gridmon.api.errors import install_error_handlers
from gridmon.api.guard import RequestGuard
from gridmon.api.prom import StateCollector
from gridmon.api.prom_broker import BrokerCollector
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
token is configured, and are open otherwise. `/health`, `/ready` and `/metrics` are always open
(`/ready` lists its checks' details only to the read or admin token). A request body is read only
after the admin token was checked, and only up to `GRIDMON_API_MAX_BODY_BYTES` (413 above).

**Limits.** Each request's queries are cancelled after `GRIDMON_API_STATEMENT_TIMEOUT_S` (503);
a readings request that would aggregate more than `GRIDMON_API_MAX_ROWS_PER_REQUEST` readings is
refused with 400 naming the limit.

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
        # /docs is served from local assets with a CSP (gridmon.api.docs); no CDN-loaded pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    registry = CollectorRegistry()
    registry.register(StateCollector())
    registry.register(BrokerCollector(settings.broker_url))
    app.state.registry = registry
    install_error_handlers(app)
    # Outermost last: the access log sees the guard's 401/413 answers too.
    app.add_middleware(RequestGuard, settings=settings)
    app.add_middleware(AccessLogMiddleware, metrics=RequestMetrics.create(registry))
    for module in (health, metrics, devices, bands, readings, alerts, dead_letters, admin, models, predictions):
        app.include_router(module.router)
    app.include_router(docs.router)
    app.include_router(dashboard_router)  # the operator dashboard at `/` (gridmon/api/dashboard), not in the schema
    if settings.admin_token is None:
        log.warning("GRIDMON_ADMIN_TOKEN is not set: admin routes answer 503")
    return app
