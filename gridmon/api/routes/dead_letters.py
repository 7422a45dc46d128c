"""Dead letters (admin): payloads validation rejected, listed and replayed.

Replay runs the stored payload through the same validation as the bridge
(`gridmon.domain.readings.parse_reading`). If it passes now — the rules changed, or the sender's
problem was fixed upstream — the reading is stored through the normal write path and the dead
letter is deleted, in one transaction. If it still fails, nothing changes and the answer says why.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gridmon.api.auth import AdminAccess
from gridmon.api.errors import ADMIN_RESPONSES, NOT_FOUND, ErrorBody, error_response
from gridmon.api.params import (
    DEFAULT_PAGE,
    Cursor,
    IsoDatetime,
    Limit,
    Page,
    RowId,
    aware,
    decode_cursor,
    encode_cursor,
)
from gridmon.api.routes.readings import RawReading
from gridmon.config import Settings
from gridmon.domain.readings import Rejection, parse_reading
from gridmon.storage import dead_letters
from gridmon.storage.db import connection
from gridmon.storage.readings import write_readings

router = APIRouter(tags=["dead letters"], responses=ADMIN_RESPONSES, dependencies=AdminAccess)

PAYLOAD_PREVIEW_BYTES = 4096


class DeadLetter(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    detail: str
    payload_size: int = Field(description="Size in bytes of the payload as received (only a prefix may be stored).")
    payload: str = Field(
        description=f"The payload as UTF-8 text (undecodable bytes replaced), first {PAYLOAD_PREVIEW_BYTES} bytes."
    )
    payload_truncated: bool


class Replayed(BaseModel):
    id: int = Field(description="The dead letter that was replayed (now deleted).")
    device_id: str
    stored: bool = Field(description="False when an identical reading (same device and ts) was already stored.")
    reading: RawReading


@router.get("/dead-letters", response_model=Page[DeadLetter], summary="List dead letters, newest first (admin)")
def list_dead_letters(
    reason: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,64}$", description="Only this reason, e.g. `not_json`.")
    ] = None,
    since: Annotated[IsoDatetime | None, Query(description="Only those received at or after this time.")] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Page[DeadLetter]:
    before = decode_cursor(cursor, int)[0] if cursor else None
    with connection() as conn:
        rows = dead_letters.list_dead_letters(
            conn,
            reason=reason,
            since=aware(since) if since else None,
            before=before,
            limit=limit + 1,
            preview_bytes=PAYLOAD_PREVIEW_BYTES,
        )
    items = [
        DeadLetter(
            id=r[0],
            received_at=r[1],
            topic=r[2],
            reason=r[3],
            detail=r[4],
            payload_size=r[5],
            payload=bytes(r[6]).decode("utf-8", errors="replace"),
            payload_truncated=r[5] > PAYLOAD_PREVIEW_BYTES,
        )
        for r in rows[:limit]
    ]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[DeadLetter](items=items, next_cursor=next_cursor)


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    response_model=Replayed,
    responses={
        **NOT_FOUND,
        422: {"model": ErrorBody, "description": "Still invalid: `reason` says why (the dead letter is kept)"},
        409: {"model": ErrorBody, "description": "Only a prefix of the payload was kept: it cannot be replayed"},
    },
    summary="Re-validate a dead letter and store it if it passes now (admin)",
)
def replay_dead_letter(request: Request, dead_letter_id: RowId) -> Replayed | JSONResponse:
    settings: Settings = request.app.state.settings
    with connection() as conn:
        row = dead_letters.lock_dead_letter(conn, dead_letter_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"dead letter {dead_letter_id} not found")
        topic, payload, size = row
        if len(payload) < size:
            return error_response(
                409,
                f"only the first {len(payload)} of {size} bytes were kept (GRIDMON_DEAD_LETTER_PAYLOAD_BYTES): "
                "this payload cannot be replayed",
                reason="truncated",
            )
        outcome = parse_reading(
            topic,
            payload,
            time.time(),
            max_payload_bytes=settings.max_payload_bytes,
            max_future_s=settings.max_future_s,
            topic_filter=settings.mqtt_topic,
        )
        if isinstance(outcome, Rejection):
            return error_response(422, f"still invalid: {outcome.detail}", reason=outcome.reason)
        result = write_readings(conn, [outcome], [])
        dead_letters.delete_dead_letter(conn, dead_letter_id)
    reading = RawReading(
        ts=datetime.fromtimestamp(outcome.ts, UTC),
        voltage=outcome.voltage,
        current=outcome.current,
        temperature=outcome.temperature,
        extra=outcome.extra,
    )
    return Replayed(id=dead_letter_id, device_id=outcome.device_id, stored=result.inserted == 1, reading=reading)
