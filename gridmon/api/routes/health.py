"""`GET /health` (the process answers) and `GET /ready` (the whole pipeline is up).

`/ready` is open (probes need no token), so it is cheap and tells strangers little: one round of
checks serves every caller for GRIDMON_READY_CACHE_S seconds (concurrent callers wait for the
same round), and the details — hosts, ports, worker names, heartbeat ages — go only to callers
with the read or admin token (or to everyone while neither token is configured).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from gridmon.api.auth import Credentials, caller
from gridmon.api.readiness import CheckResult, run_checks
from gridmon.api.session import ADMIN, READ
from gridmon.config import Settings

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    ok: bool
    detail: Annotated[
        str | None, Field(description="What was found; on failure, what to fix (only with a token).")
    ] = None
    age_s: Annotated[float | None, Field(description="Heartbeat age in seconds (bridge and beat checks).")] = None


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    failed: list[str] = Field(description="Names of the checks that failed.")
    checks: dict[str, Check] = Field(
        description="database, redis, mqtt (broker accepts a connect), bridge (heartbeat age), "
        "workers (a Celery worker answers a ping), beat (heartbeat age)."
    )


@router.get("/health", response_model=Health, summary="The API process is alive (no dependencies checked)")
def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Every part of the pipeline is reachable and alive",
    responses={503: {"model": Readiness, "description": "At least one check failed (see `failed`)"}},
)
async def ready(request: Request, response: Response, credentials: Credentials) -> Readiness:
    results = await _cached_checks(request)
    settings: Settings = request.app.state.settings
    who = caller(settings, credentials.credentials if credentials else None, request.headers.get("cookie"))
    open_api = settings.admin_token is None and settings.read_token is None
    detailed = open_api or who in (ADMIN, READ)
    checks = {
        name: Check(ok=r.ok, detail=r.detail, age_s=r.age_s) if detailed else Check(ok=r.ok)
        for name, r in results.items()
    }
    failed = [name for name, check in checks.items() if not check.ok]
    if failed:
        response.status_code = 503
    return Readiness(status="not_ready" if failed else "ready", failed=failed, checks=checks)


async def _cached_checks(request: Request) -> dict[str, CheckResult]:
    state = request.app.state
    lock: asyncio.Lock | None = getattr(state, "ready_lock", None)
    if lock is None:
        lock = state.ready_lock = asyncio.Lock()
    async with lock:
        cached: tuple[float, dict[str, CheckResult]] | None = getattr(state, "ready_cache", None)
        max_age = state.settings.ready_cache_s
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        results = await run_in_threadpool(run_checks, state.settings)
        state.ready_cache = (time.monotonic(), results)
        return results
