"""Alerts: the list (filters, keyset pages), one alert, acknowledge and resolve.

Every statement runs in `gridmon.storage.alerts`; acknowledge and resolve write the outbox event in the
same transaction, so Redis consumers hear about an operator's resolve like any other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from gridmon.api.auth import AdminAccess, ReadAccess
from gridmon.api.errors import BAD_BODY, DATA_RESPONSES, FORBIDDEN, NOT_FOUND, ErrorBody
from gridmon.api.params import (
    DEFAULT_PAGE,
    DEVICE_ID_PATTERN,
    Cursor,
    IsoDatetime,
    Limit,
    Page,
    RowId,
    aware,
    decode_cursor,
    encode_cursor,
)
from gridmon.domain.severity import Severity
from gridmon.storage import alerts as store
from gridmon.storage.db import connection

router = APIRouter(tags=["alerts"], responses=DATA_RESPONSES)

State = Literal["open", "acknowledged", "resolved"]
# Free text may hold tabs and newlines, but no other control characters (and never NUL).
_NOTE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class Alert(BaseModel):
    """One alert episode: consecutive anomalous readings of one device and metric."""

    id: int = Field(description="Alert id; also the episode id in Redis messages.")
    device_id: str
    metric: str
    detector: str
    state: State
    severity: Severity
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    resolved_reason: str | None
    value: float | None
    value_ts: datetime | None
    score: float | None
    description: str
    readings_count: int
    ack_note: str | None
    acked_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    note: Annotated[str | None, Field(max_length=2000, pattern=_NOTE_PATTERN, examples=["crew dispatched"])] = None


def _alert(row: dict[str, Any]) -> Alert:
    return Alert.model_validate(row)


@router.get("/alerts", response_model=Page[Alert], dependencies=ReadAccess, summary="List alerts, newest first")
def list_alerts(
    device: Annotated[
        str | None, Query(pattern=DEVICE_ID_PATTERN, max_length=64, description="Only this device.")
    ] = None,
    severity: Annotated[list[Severity] | None, Query(description="Only these severities (repeatable).")] = None,
    state: Annotated[list[State] | None, Query(description="Only these states (repeatable).")] = None,
    since: Annotated[IsoDatetime | None, Query(description="Only alerts opened at or after this time.")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[Alert]:
    before = decode_cursor(cursor, int)[0] if cursor else None
    with connection() as conn:
        rows = store.list_alerts(
            conn,
            device=device,
            severities=list(severity) if severity else None,
            states=list(state) if state else None,
            since=aware(since) if since else None,
            before=before,
            limit=limit + 1,
        )
    items = [_alert(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[Alert](items=items, next_cursor=next_cursor)


@router.get(
    "/alerts/{alert_id}", response_model=Alert, dependencies=ReadAccess, responses=NOT_FOUND, summary="One alert"
)
def get_alert(alert_id: RowId) -> Alert:
    with connection() as conn:
        row = store.get_alert(conn, alert_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} not found")
    return _alert(row)


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=Alert,
    dependencies=AdminAccess,
    responses={
        **NOT_FOUND,
        **FORBIDDEN,
        **BAD_BODY,
        409: {"model": ErrorBody, "description": "The alert is already resolved"},
    },
    summary="Acknowledge an alert, with an optional note (admin)",
)
def ack_alert(alert_id: RowId, body: Annotated[AckRequest | None, Body()] = None) -> Alert:
    note = body.note if body else None
    with connection() as conn:
        try:
            row = store.acknowledge(conn, alert_id, note)
        except store.AlertStateError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
    if row is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} not found")
    return _alert(row)


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=Alert,
    dependencies=AdminAccess,
    responses={**NOT_FOUND, **FORBIDDEN},
    summary="Resolve an alert by hand (admin); resolving a resolved alert changes nothing",
)
def resolve_alert(alert_id: RowId) -> Alert:
    with connection() as conn:
        row = store.resolve(conn, alert_id, reason="operator")
    if row is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} not found")
    return _alert(row)
