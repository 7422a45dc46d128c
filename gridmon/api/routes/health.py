"""`GET /health` (the process answers) and `GET /ready` (the whole pipeline is up)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from gridmon.api.readiness import run_checks

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    ok: bool
    detail: str = Field(description="What was found; on failure, what to fix.")
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
async def ready(request: Request, response: Response) -> Readiness:
    results = await run_in_threadpool(run_checks, request.app.state.settings)
    checks = {name: Check(ok=r.ok, detail=r.detail, age_s=r.age_s) for name, r in results.items()}
    failed = [name for name, check in checks.items() if not check.ok]
    if failed:
        response.status_code = 503
    return Readiness(status="not_ready" if failed else "ready", failed=failed, checks=checks)
