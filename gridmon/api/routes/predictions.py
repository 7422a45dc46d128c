"""Maintenance predictions: the latest per device (`GET /predictions`) and one device's.

Read through `gridmon.storage.predictions`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from gridmon.api.auth import ReadAccess
from gridmon.api.errors import DATA_RESPONSES, NOT_FOUND
from gridmon.api.params import DEFAULT_PAGE, Cursor, DeviceId, Limit, Page, decode_cursor, encode_cursor
from gridmon.domain.maintenance import MaintenancePrediction
from gridmon.domain.severity import Severity
from gridmon.storage import devices
from gridmon.storage.db import connection
from gridmon.storage.predictions import latest_prediction, latest_predictions_page

router = APIRouter(tags=["predictions"], responses=DATA_RESPONSES, dependencies=ReadAccess)

RiskLevel = Severity


class Prediction(BaseModel):
    """A device's maintenance outlook (same fields as the `alerts:maintenance` Redis message)."""

    device_id: str
    computed_at: datetime
    predicted_failure_date: datetime | None = Field(
        description="When the temperature trend crosses the device's limit; null when flat or falling."
    )
    interval: list[datetime] | None = Field(
        min_length=2, max_length=2, description="[low, high] prediction interval of the failure date."
    )
    confidence: float = Field(description="0–1: how far to trust the date.")
    risk_score: float
    risk_level: RiskLevel
    risk_factors: list[dict[str, Any]]
    recommended_actions: list[str]
    inputs: dict[str, Any] = Field(description="What the prediction was computed from (window, samples, …).")


def _prediction(p: MaintenancePrediction) -> Prediction:
    return Prediction(
        device_id=p.device_id,
        computed_at=p.computed_at,
        predicted_failure_date=p.predicted_failure_date,
        interval=list(p.interval) if p.interval else None,
        confidence=p.confidence,
        risk_score=p.risk_score,
        risk_level=p.risk_level,
        risk_factors=p.risk_factors,
        recommended_actions=p.recommended_actions,
        inputs=p.inputs,
    )


@router.get("/predictions", response_model=Page[Prediction], summary="Latest maintenance prediction of every device")
def list_predictions(
    risk_level: Annotated[list[RiskLevel] | None, Query(description="Only these risk levels (repeatable).")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[Prediction]:
    """Ordered by device id; read from each device's newest row by index, not from the history."""
    after = decode_cursor(cursor, str)[0] if cursor else None
    with connection() as conn:
        chosen = latest_predictions_page(
            conn, after=after, risk_levels=[str(level) for level in risk_level or ()] or None, limit=limit + 1
        )
    items = [_prediction(p) for p in chosen[:limit]]
    next_cursor = encode_cursor(items[-1].device_id) if len(chosen) > limit else None
    return Page[Prediction](items=items, next_cursor=next_cursor)


@router.get(
    "/devices/{device_id}/prediction",
    response_model=Prediction,
    responses=NOT_FOUND,
    summary="Latest maintenance prediction of one device",
)
def device_prediction(device_id: DeviceId) -> Prediction:
    with connection() as conn:
        prediction = latest_prediction(conn, device_id)
        known = prediction is not None or (
            devices.device_exists(conn, device_id)
        )
    if prediction is None:
        detail = "no prediction yet for device" if known else "device not found"
        raise HTTPException(status_code=404, detail=f"{detail} {device_id!r}")
    return _prediction(prediction)
