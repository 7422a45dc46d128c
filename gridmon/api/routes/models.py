"""Anomaly model versions: list them, and activate one to roll back or forward (admin).

Both go through `gridmon.storage.model_versions`; workers notice the new active version on their
next scan, so activation needs no restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from gridmon.api.auth import AdminAccess, ReadAccess
from gridmon.api.errors import DATA_RESPONSES, FORBIDDEN, NOT_FOUND
from gridmon.api.params import DEFAULT_PAGE, Limit
from gridmon.storage.db import connection
from gridmon.storage.model_versions import activate_model, list_models

router = APIRouter(tags=["models"], responses=DATA_RESPONSES)


class ModelVersion(BaseModel):
    """One trained IsolationForest version."""

    id: int
    trained_at: datetime
    window_start: datetime | None = Field(description="Training data window.")
    window_end: datetime | None
    n_samples: int
    features: Any = Field(description="Feature names the model was trained on.")
    threshold: float = Field(description="Score threshold calibrated to the target false-alarm rate.")
    params: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Training metrics.")
    status: Literal["active", "inactive"]
    artifact_path: str
    note: str | None
    activated_at: datetime | None = None


def _version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion.model_validate(row)


@router.get("/models", response_model=list[ModelVersion], dependencies=ReadAccess, summary="Model versions")
def get_models(limit: Limit = DEFAULT_PAGE) -> list[ModelVersion]:
    """Newest first."""
    with connection() as conn:
        return [_version(row) for row in list_models(conn, limit=limit)]


@router.post(
    "/models/{model_id}/activate",
    response_model=ModelVersion,
    dependencies=AdminAccess,
    responses={**NOT_FOUND, **FORBIDDEN},
    summary="Make this version the active one (admin); workers pick it up without a restart",
)
def activate(model_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> ModelVersion:
    with connection() as conn:
        row = activate_model(conn, model_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"model version {model_id} not found")
    return _version(row)
