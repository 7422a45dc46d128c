"""Admin: enqueue a retrain, a scan or a maintenance prediction run, and follow the Celery task.

The API only sends tasks by name (`app.send_task`); it never imports the worker modules, so the
API process carries none of the training or scanning dependencies' start-up cost.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from celery.result import AsyncResult
from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from gridmon.api.auth import AdminAccess
from gridmon.api.errors import ADMIN_RESPONSES, BAD_BODY
from gridmon.api.params import DEVICE_ID_PATTERN
from gridmon.celery import app as celery_app

log = logging.getLogger(__name__)

router = APIRouter(tags=["admin"], responses=ADMIN_RESPONSES, dependencies=AdminAccess)

TASKS = {
    "retrain": "workers.training.retrain",
    "scan": "workers.scanning.scan",
    "predict": "workers.maintenance.predict",
}
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class Enqueued(BaseModel):
    task_id: str
    task: str = Field(description="Celery task name.")
    status_url: str = Field(description="Where to follow it: `GET /admin/tasks/{task_id}`.")


class TaskStatus(BaseModel):
    task_id: str
    state: str = Field(
        description="Celery state: PENDING (queued, or unknown id), STARTED, RETRY, SUCCESS, FAILURE, REVOKED."
    )
    ready: bool = Field(description="True once the task finished (SUCCESS, FAILURE or REVOKED).")
    result: Annotated[Any | None, Field(description="The task's JSON result (SUCCESS only).")] = None
    error: Annotated[str | None, Field(description="The exception (FAILURE only).")] = None
    date_done: datetime | None = None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    device_id: Annotated[
        str | None, Field(pattern=DEVICE_ID_PATTERN, max_length=64, description="Only this device.")
    ] = None


def _enqueue(request: Request, kind: str, kwargs: dict[str, Any] | None = None) -> Enqueued:
    name = TASKS[kind]
    result = celery_app.send_task(name, kwargs=kwargs or {})
    log.info("task enqueued task=%s id=%s", name, result.id)
    return Enqueued(
        task_id=result.id, task=name, status_url=str(request.url_for("task_status", task_id=result.id).path)
    )


@router.post(
    "/admin/retrain", summary="Retrain the anomaly model now (admin)", status_code=202, response_model=Enqueued
)
def retrain(request: Request) -> Enqueued:
    return _enqueue(request, "retrain")


@router.post(
    "/admin/scan", summary="Run an incremental anomaly scan now (admin)", status_code=202, response_model=Enqueued
)
def scan(request: Request) -> Enqueued:
    return _enqueue(request, "scan")


@router.post(
    "/admin/predict",
    summary="Run maintenance predictions now (admin)",
    status_code=202,
    response_model=Enqueued,
    responses=BAD_BODY,
)
def predict(request: Request, body: Annotated[PredictRequest | None, Body()] = None) -> Enqueued:
    kwargs = {"device_id": body.device_id} if body and body.device_id else {}
    return _enqueue(request, "predict", kwargs)


@router.get("/admin/tasks/{task_id}", response_model=TaskStatus, name="task_status", summary="A task's state (admin)")
def task_status(task_id: Annotated[str, Path(pattern=_UUID, description="Task id from an enqueue.")]) -> TaskStatus:
    result = AsyncResult(task_id, app=celery_app)
    state = result.state
    status = TaskStatus(task_id=task_id, state=state, ready=state in ("SUCCESS", "FAILURE", "REVOKED"))
    if state == "SUCCESS":
        status.result = result.result
    elif state == "FAILURE":
        status.error = f"{type(result.result).__name__}: {result.result}"
    done = result.date_done
    if isinstance(done, str):
        done = datetime.fromisoformat(done)
    status.date_done = done
    return status
