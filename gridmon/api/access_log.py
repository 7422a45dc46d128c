"""One structured log line per request, and request counters for `/metrics`.

A pure ASGI middleware (not `BaseHTTPMiddleware`), so it sees the final status of every response,
including errors turned into responses by the exception handlers. It logs the method, the path,
the status and the duration; never headers (the `Authorization` header carries the token) and
never the query string (it could carry anything a client chose to put there).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from http import HTTPMethod

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gridmon.api.access")

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class RequestMetrics:
    """Request counters of one app (kept in the app's own registry)."""

    requests: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RequestMetrics:
        return cls(
            requests=Counter(
                "gridmon_api_requests",
                "API requests by route template, method and status",
                ["method", "route", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "gridmon_api_request_duration_seconds",
                "API request duration by route template",
                ["method", "route"],
                buckets=_DURATION_BUCKETS,
                registry=registry,
            ),
        )


def _kv(value: str) -> str:
    """A value safe to put after `key=`: quoted when it contains spaces, quotes or `=`."""
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json.dumps(value)


# Label values come from fixed sets only: uvicorn accepts any token as a method, and a label per
# made-up method would grow /metrics without bound.
METHODS = frozenset(HTTPMethod) - {HTTPMethod.CONNECT, HTTPMethod.TRACE}


def method_label(method: str) -> str:
    """The method, or `other` for anything outside METHODS."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


def _route_template(scope: Scope) -> str:
    # The router stores the matched route in the scope; its template keeps label values bounded
    # (a request no route matched is `unmatched`, never its raw path).
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLogMiddleware:
    """Log `request method=… path=… status=… duration_ms=…` once per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before starting a response, the server answers 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            method = method_label(scope.get("method", ""))
            client = scope.get("client")
            log.info(
                "request method=%s path=%s status=%d duration_ms=%.1f client=%s",
                method if method != "other" else _kv(scope.get("method", "")[:32]),
                _kv(scope.get("path", "")[:512]),
                status,
                elapsed * 1000.0,
                client[0] if client else "-",
            )
            if self.metrics is not None:
                route = _route_template(scope)
                self.metrics.requests.labels(method, route, status_label(status)).inc()
                self.metrics.duration.labels(method, route).observe(elapsed)
