"""The dashboard's routes: the page at `/`, its files under `/ui/`, the safe ranges it draws,
the session that stands in for the token (`/ui/session`, see `gridmon.api.session`) and the live
event stream at `/live/events` (the read rules, by header or session cookie — never a token in
the URL — and at most GRIDMON_LIVE_MAX_STREAMS streams per process and
GRIDMON_LIVE_MAX_STREAMS_PER_CLIENT per client address; 503 beyond).

None of these are in the OpenAPI document: they serve the browser page, not API clients (the
stream never ends, which also keeps the schema fuzzer away from it). docs/dashboard.md lists them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from gridmon.api.auth import ReadAccess
from gridmon.api.dashboard.assets import media_type, plotly_bundle, static_file
from gridmon.api.dashboard.hub import LiveEvent, LiveHub
from gridmon.api.dashboard.login import router as login_router
from gridmon.api.dashboard.slots import Slot, StreamSlots
from gridmon.api.params import DeviceId
from gridmon.jobs.limits import default_limits, device_limits
from gridmon.storage.db import connection
from gridmon.storage.devices import device_exists

router = APIRouter(include_in_schema=False)
router.include_router(login_router)  # first: `/ui/session` before the `/ui/{name}` files

STREAM_LIFETIME_S = 300.0
"""A stream ends after this long and the browser reconnects by itself: a changed token is checked
again, and a stopping server never waits longer than this for open dashboards."""
KEEPALIVE_S = 15.0
RETRY_MS = 2000

# Plotly adds <style> elements at run time, hence 'unsafe-inline' for styles only.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MEDIA_JS = "text/javascript; charset=utf-8"
_FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


@router.get("/")
def index() -> FileResponse:
    """The dashboard page (it holds no data; every number comes from the API with the token)."""
    path = static_file("index.html")
    assert path is not None, "gridmon/api/dashboard/static/index.html is part of the package"
    return FileResponse(path, media_type=media_type(path), headers=_PAGE_HEADERS)


@router.get("/ui/vendor/plotly.min.js")
def plotly_js(accept_encoding: Annotated[str, Header()] = "", if_none_match: Annotated[str, Header()] = "") -> Response:
    """plotly.js from the installed `plotly` package, gzipped when the browser accepts it."""
    bundle = plotly_bundle()
    headers = {"ETag": bundle.etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if bundle.etag in if_none_match:
        return Response(status_code=304, headers=headers)
    if "gzip" in accept_encoding:
        return Response(bundle.gzipped, media_type=MEDIA_JS, headers={**headers, "Content-Encoding": "gzip"})
    return Response(bundle.plain, media_type=MEDIA_JS, headers=headers)


@router.get("/ui/{name}")
def asset(name: str) -> FileResponse:
    """One of the dashboard's own files (plain names only)."""
    path = static_file(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no dashboard file {name[:64]!r}")
    return FileResponse(path, media_type=media_type(path), headers=_FILE_HEADERS)


class SafeRanges(BaseModel):
    """The safety limits that apply to one device: its profile's where set, the defaults otherwise."""

    device_id: str
    voltage: tuple[float, float]
    current: tuple[float, float]
    temperature: tuple[float, float]
    from_profile: list[str] = Field(description="Metrics whose range comes from the device profile.")


@router.get("/ui/limits/{device_id}", response_model=SafeRanges, dependencies=ReadAccess)
def limits(request: Request, device_id: DeviceId) -> SafeRanges:
    """The same limits the safety check applies (`gridmon.jobs.limits`)."""
    default = default_limits(request.app.state.settings)
    with connection() as conn:
        if not device_exists(conn, device_id):
            raise HTTPException(status_code=404, detail=f"device {device_id!r} not found")
        chosen = device_limits(conn, [device_id], default).get(device_id, default)
    ranges = asdict(chosen)
    changed = [metric for metric, band in ranges.items() if tuple(band) != tuple(getattr(default, metric))]
    return SafeRanges(device_id=device_id, from_profile=changed, **ranges)


def live_hub(request: Request) -> LiveHub:
    """The app's hub (created with the first stream, on the app's Redis)."""
    hub: LiveHub | None = getattr(request.app.state, "live_hub", None)
    if hub is None:
        hub = LiveHub(request.app.state.settings.redis_url)
        request.app.state.live_hub = hub
    return hub


async def event_stream(hub: LiveHub, lifetime_s: float = STREAM_LIFETIME_S) -> AsyncIterator[bytes]:
    """`text/event-stream` bytes: a hello, then the hub's events, keep-alive comments in quiet
    spells, until `lifetime_s` has passed (the browser then reconnects)."""
    hello = {"server_time": datetime.now(UTC).isoformat(), "stream_lifetime_s": lifetime_s}
    yield f"retry: {RETRY_MS}\n\n".encode() + LiveEvent("hello", hello).encode()
    deadline = time.monotonic() + lifetime_s
    async with hub.subscribe() as queue:
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=min(KEEPALIVE_S, left))
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield event.encode()


@router.get("/live/events", dependencies=ReadAccess)
async def live_events(request: Request) -> StreamingResponse:
    """Server-Sent Events: `hello`, `summary` (every second), `alert`, `status`, `resync`."""
    slot = stream_slots(request).acquire(request.client.host if request.client else "-")
    return StreamingResponse(
        _released(event_stream(live_hub(request)), slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),  # also when the stream never started
    )


async def _released(stream: AsyncIterator[bytes], slot: Slot) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield chunk
    finally:
        slot.release()


def stream_slots(request: Request) -> StreamSlots:
    """The app's stream counter (per process)."""
    slots: StreamSlots | None = getattr(request.app.state, "stream_slots", None)
    if slots is None:
        settings = request.app.state.settings
        slots = StreamSlots(settings.live_max_streams, settings.live_max_streams_per_client)
        request.app.state.stream_slots = slots
    return slots
