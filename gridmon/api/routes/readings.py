"""`GET /devices/{id}/readings`: raw rows or per-bucket avg/min/max/count over a time range.

Buckets are computed in the database (aligned to UTC midnight) by `gridmon.storage.rollups`: from
the coarsest history rollup (1 hour, 1 minute) whose bucket divides the requested one, and from
the raw rows only for short ranges (and the partial rollup buckets at the range's edges). The
answer is the same on TimescaleDB and on plain PostgreSQL. The range and the number of rows or
buckets per response are bounded; a raw response that hit the bound says so and tells where to
continue; the part of a range aggregated from raw rows is bounded by
GRIDMON_API_MAX_ROWS_PER_REQUEST.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from gridmon.api.auth import ReadAccess
from gridmon.api.errors import DATA_RESPONSES, NOT_FOUND, ErrorBody
from gridmon.api.params import DeviceId, IsoDatetime, aware, now_utc, shifted
from gridmon.storage import devices, rollups, seq_gaps, series
from gridmon.storage.db import connection

router = APIRouter(tags=["readings"], responses=DATA_RESPONSES)

BUCKETS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
Bucket = Literal["raw", "1m", "5m", "1h", "1d"]
MAX_RAW_ROWS = 10_000
DEFAULT_RAW_ROWS = 1_000
MAX_BUCKETS = 10_000
MAX_RAW_RANGE = timedelta(days=31)
MAX_RANGE = timedelta(days=3660)
DEFAULT_RANGE = timedelta(hours=1)


class RawReading(BaseModel):
    ts: datetime
    voltage: float
    current: float
    temperature: float
    extra: dict[str, float] | None = None


class Stats(BaseModel):
    avg: float
    min: float
    max: float


class BucketRow(BaseModel):
    start: datetime = Field(description="Start of the bucket (inclusive).")
    count: int
    missing: int = Field(
        0,
        description="Readings the device's `seq` says never arrived, counted in the bucket of the reading "
        "that followed the gap (0 for devices that send no `seq`).",
    )
    voltage: Stats
    current: Stats
    temperature: Stats


class Readings(BaseModel):
    device_id: str
    start: datetime
    end: datetime
    bucket: Bucket
    readings: Annotated[list[RawReading] | None, Field(description="Raw rows (bucket=raw), oldest first.")] = None
    buckets: Annotated[list[BucketRow] | None, Field(description="Buckets with data, oldest first.")] = None
    truncated: bool = Field(description="True when `limit` rows were returned and more exist in the range.")
    next_start: Annotated[datetime | None, Field(description="When truncated: pass as `start` to continue.")] = None


def has_timescale(request: Request, conn: psycopg.Connection) -> bool:
    """Whether the rollups are continuous aggregates (looked up once per app)."""
    cached: bool | None = getattr(request.app.state, "timescale", None)
    if cached is None:
        cached = rollups.is_timescale(conn)
        request.app.state.timescale = cached
    return cached


def _resolve_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = aware(end) if end is not None else now_utc()
    start = aware(start) if start is not None else shifted(end, -DEFAULT_RANGE)
    if start >= end:
        raise HTTPException(status_code=422, detail="start must be before end")
    return start, end


RATE_WINDOW = timedelta(minutes=5)


def _within_budget(request: Request, conn: psycopg.Connection, device_id: str, span: timedelta) -> None:
    """400 when the range holds more readings than one request may aggregate, estimated from the
    device's rate over its latest RATE_WINDOW (the statement timeout backs an estimate that is off)."""
    budget = request.app.state.settings.api_max_rows_per_request
    rate = series.recent_rate(conn, device_id, RATE_WINDOW)
    estimate = rate * span.total_seconds()
    if estimate > budget:
        raise HTTPException(
            status_code=400,
            detail=f"this range holds about {estimate:,.0f} readings of {device_id!r} ({rate:.2f}/s recently); "
            f"at most {budget:,} per request (GRIDMON_API_MAX_ROWS_PER_REQUEST): narrow the range",
        )


def _stats(row: tuple[Any, ...], at: int) -> Stats:
    return Stats(avg=row[at], min=row[at + 1], max=row[at + 2])


@router.get(
    "/devices/{device_id}/readings",
    response_model=Readings,
    dependencies=ReadAccess,
    responses={**NOT_FOUND, 400: {"model": ErrorBody, "description": "The range holds too many readings"}},
    summary="Raw readings or per-bucket avg/min/max/count",
)
def get_readings(
    request: Request,
    device_id: DeviceId,
    start: Annotated[IsoDatetime | None, Query(description="Inclusive; default `end` − 1 h. Naive = UTC.")] = None,
    end: Annotated[IsoDatetime | None, Query(description="Exclusive; default now.")] = None,
    bucket: Annotated[Bucket, Query(description="`raw` rows, or bucket width.")] = "raw",
    limit: Annotated[
        int, Query(ge=1, le=MAX_RAW_ROWS, description=f"Raw rows per response (1–{MAX_RAW_ROWS}).")
    ] = DEFAULT_RAW_ROWS,
) -> Readings:
    """Ranges are limited: 31 days for raw rows, 10,000 buckets and 10 years otherwise, and the
    part of a bucketed range read from raw rows (not from a rollup) to about
    GRIDMON_API_MAX_ROWS_PER_REQUEST readings (400 beyond)."""
    start, end = _resolve_range(start, end)
    span = end - start
    if span > MAX_RANGE:
        raise HTTPException(status_code=422, detail=f"range is {span.days} days; at most {MAX_RANGE.days} allowed")
    if bucket == "raw" and span > MAX_RAW_RANGE:
        raise HTTPException(
            status_code=422,
            detail=f"raw range is at most {MAX_RAW_RANGE.days} days; use a bucket (1m, 5m, 1h, 1d) for longer ranges",
        )
    if bucket != "raw" and span / BUCKETS[bucket] > MAX_BUCKETS:
        raise HTTPException(
            status_code=422,
            detail=f"{span / BUCKETS[bucket]:.0f} buckets of {bucket} in the range; at most {MAX_BUCKETS} allowed",
        )
    with connection() as conn:
        if not devices.device_exists(conn, device_id):
            raise HTTPException(status_code=404, detail=f"device {device_id!r} not found")
        result = Readings(device_id=device_id, start=start, end=end, bucket=bucket, truncated=False)
        if bucket == "raw":
            rows = series.raw_readings(conn, device_id, start, end, limit + 1)
            result.readings = [
                RawReading(ts=r[0], voltage=r[1], current=r[2], temperature=r[3], extra=r[4]) for r in rows[:limit]
            ]
            if len(rows) > limit:
                result.truncated = True
                result.next_start = rows[limit][0]
            return result
        width = BUCKETS[bucket]
        plan = rollups.plan(conn, start, end, width, timescale=has_timescale(request, conn))
        if plan.raw_span > timedelta(0):
            _within_budget(request, conn, device_id, plan.raw_span)
        rows = rollups.bucketed(conn, device_id, plan, width)
        missing = seq_gaps.bucketed_missing(
            conn, device_id, start, end, width, timescale=has_timescale(request, conn)
        )
    result.buckets = [
        BucketRow(
            start=r[0],
            count=r[1],
            missing=missing.get(r[0], 0),
            voltage=_stats(r, 2),
            current=_stats(r, 5),
            temperature=_stats(r, 8),
        )
        for r in rows
    ]
    return result
