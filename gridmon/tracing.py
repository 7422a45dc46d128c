"""Optional OpenTelemetry tracing: bridge hand-off → Celery ingest task → database write.

Off by default (GRIDMON_TRACING=0) and then free: callers check `enabled()` (a bool) before doing
anything, and OpenTelemetry is not even imported. When on, spans go to the console or, with
GRIDMON_OTLP_ENDPOINT, to an OTLP/HTTP collector. The trace context travels in the Celery task
message headers (W3C `traceparent`), so the worker's spans join the bridge's trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gridmon.config import get_settings

log = logging.getLogger(__name__)

TRACE_HEADERS = ("traceparent", "tracestate")
_configured = False


@functools.lru_cache(maxsize=1)
def enabled() -> bool:
    return get_settings().tracing


def setup(service_name: str) -> None:
    """Install a tracer provider for this process (once; no-op when tracing is off)."""
    global _configured
    if not enabled() or _configured:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    endpoint = get_settings().otlp_endpoint
    exporter: SpanExporter
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing on service=%s exporter=%s", service_name, endpoint or "console")


def shutdown() -> None:
    """Flush pending spans (at process exit)."""
    if _configured:
        from opentelemetry import trace

        provider: Any = trace.get_tracer_provider()
        provider.shutdown()


@contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, parent: Mapping[str, str] | None = None
) -> Iterator[None]:
    """A span named `name`, child of `parent` headers when given (no-op when tracing is off)."""
    if not enabled():
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    context = extract(dict(parent)) if parent else None
    with trace.get_tracer("gridmon").start_as_current_span(name, context=context, attributes=dict(attributes or {})):
        yield


def inject_headers() -> dict[str, str]:
    """The current trace context as message headers (empty when tracing is off)."""
    if not enabled():
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def headers_from_request(request: Any) -> dict[str, str]:
    """Trace headers of a Celery task request (custom headers arrive as request attributes)."""
    found: dict[str, str] = {}
    extra = getattr(request, "headers", None) or {}
    for key in TRACE_HEADERS:
        value = request.get(key) if hasattr(request, "get") else None
        value = value or extra.get(key)
        if value:
            found[key] = str(value)
    return found
