"""Devices: the fleet list, one device with its recent statistics, and its profile (admin)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridmon.api.auth import AdminAccess, ReadAccess
from gridmon.api.errors import BAD_BODY, DATA_RESPONSES, FORBIDDEN, NOT_FOUND
from gridmon.api.params import (
    DEFAULT_PAGE,
    STALE_AFTER_S,
    Cursor,
    DeviceId,
    Limit,
    Page,
    decode_cursor,
    encode_cursor,
    now_utc,
)
from gridmon.api.routes.readings import has_timescale
from gridmon.storage import devices, rollups, seq_gaps, series
from gridmon.storage.db import connection

router = APIRouter(tags=["devices"], responses=DATA_RESPONSES)

_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # printable: no control characters (and no NUL for PostgreSQL)


class DeviceProfile(BaseModel):
    """What a device is. Safety limits and maintenance use it when set, global defaults otherwise.

    `PUT` replaces the whole profile: a field left out is cleared (back to the defaults).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=32,
            pattern=r"^[a-z][a-z0-9_-]*$",
            description="e.g. transformer, feeder, meter",
            examples=["transformer"],
        ),
    ] = None
    location: Annotated[
        str | None, Field(min_length=1, max_length=200, pattern=_TEXT_PATTERN, examples=["Substation 4"])
    ] = None
    nominal_voltage: Annotated[
        float | None,
        Field(gt=0, le=1000, description="Volts; the voltage limits become nominal ±10 %.", examples=[230.0]),
    ] = None
    rated_current: Annotated[float | None, Field(gt=0, le=1000, description="Amperes.", examples=[10.0])] = None
    temperature_limit: Annotated[
        float | None,
        Field(gt=-60, le=250, description="°C; the critical temperature for alerts and maintenance.", examples=[80.0]),
    ] = None

    @field_validator("nominal_voltage", "rated_current", "temperature_limit")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class DeviceSummary(BaseModel):
    device_id: str
    first_seen: datetime
    last_seen: datetime
    status: Literal["online", "stale"] = Field(description=f"stale = nothing received for {STALE_AFTER_S:g} s")
    open_alerts: int = Field(description="Alerts in state `open`.")
    acknowledged_alerts: int = Field(description="Alerts in state `acknowledged` (not yet resolved).")
    risk_level: Annotated[str | None, Field(description="Latest maintenance prediction's risk level.")] = None
    risk_score: float | None = None
    risk_computed_at: datetime | None = None
    readings_missing: int = Field(
        0, description="Readings the device's `seq` says never arrived, since it was first seen (0 without `seq`)."
    )
    readings_missing_estimate: int | None = Field(
        None,
        description="Devices whose latest reading has no `seq`: an estimate from the device's usual interval "
        "(readings expected minus stored over the 15 min before its latest reading); null for devices with `seq`.",
    )
    profile: DeviceProfile


class MetricStats(BaseModel):
    avg: float | None
    min: float | None
    max: float | None


class LatestReading(BaseModel):
    ts: datetime
    voltage: float
    current: float
    temperature: float
    extra: dict[str, float] | None = None


class WindowStats(BaseModel):
    window: str
    start: datetime
    end: datetime
    count: int
    voltage: MetricStats
    current: MetricStats
    temperature: MetricStats


class DeviceDetail(DeviceSummary):
    latest_reading: LatestReading | None
    stats: WindowStats


WINDOWS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
Window = Literal["15m", "1h", "6h", "24h", "7d", "30d"]


def _summary(row: dict[str, Any]) -> DeviceSummary:
    return DeviceSummary(
        device_id=row["device_id"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        status="online" if row["online"] else "stale",
        open_alerts=row["open_alerts"],
        acknowledged_alerts=row["acknowledged_alerts"],
        risk_level=row["risk_level"],
        risk_score=row["risk_score"],
        risk_computed_at=row["risk_computed_at"],
        readings_missing=row.get("readings_missing", 0),
        readings_missing_estimate=row.get("readings_missing_estimate"),
        profile=DeviceProfile(**{column: row[column] for column in devices.PROFILE_COLUMNS}),
    )


def _stale() -> timedelta:
    return timedelta(seconds=STALE_AFTER_S)


def fetch_summary(conn: Any, device_id: str) -> DeviceSummary:
    """One device's summary; 404 when the device has never reported."""
    row = devices.get_summary(conn, device_id, stale_after=_stale())
    if row is None:
        raise HTTPException(status_code=404, detail=f"device {device_id!r} not found")
    estimate = seq_gaps.estimate_missing(conn, [device_id]).get(device_id)
    missing = seq_gaps.missing_for_device(conn, device_id)
    return _summary({**row, "readings_missing": missing, "readings_missing_estimate": estimate})


@router.get("/devices", response_model=Page[DeviceSummary], dependencies=ReadAccess, summary="List devices")
def list_devices(
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
    status: Annotated[Literal["online", "stale"] | None, Query(description="Only online or stale devices.")] = None,
    kind: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")] = None,
) -> Page[DeviceSummary]:
    """Devices ordered by id with last seen, online/stale, alert counts and latest risk."""
    after = decode_cursor(cursor, str)[0] if cursor else None
    with connection() as conn:
        rows = devices.list_summaries(
            conn, after=after, status=status, kind=kind, stale_after=_stale(), limit=limit + 1
        )
        ids = [row["device_id"] for row in rows[:limit]]
        missing = seq_gaps.missing_by_device(conn, ids)
        estimates = seq_gaps.estimate_missing(conn, ids)
    items = [
        _summary(
            {
                **row,
                "readings_missing": missing.get(row["device_id"], 0),
                "readings_missing_estimate": estimates.get(row["device_id"]),
            }
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(items[-1].device_id) if len(rows) > limit else None
    return Page[DeviceSummary](items=items, next_cursor=next_cursor)


@router.get(
    "/devices/{device_id}",
    response_model=DeviceDetail,
    dependencies=ReadAccess,
    responses=NOT_FOUND,
    summary="One device with avg/min/max per metric over a window",
)
def get_device(
    request: Request,
    device_id: DeviceId,
    window: Annotated[Window, Query(description="Statistics over the last …")] = "24h",
) -> DeviceDetail:
    end = now_utc()
    start = end - WINDOWS[window]
    with connection() as conn:
        summary = fetch_summary(conn, device_id)
        timescale = has_timescale(request, conn)
        stats = rollups.totals(conn, device_id, start, end, timescale=timescale)
        latest = series.latest_reading(conn, device_id)
    window_stats = WindowStats(
        window=window,
        start=start,
        end=end,
        count=stats[0],
        voltage=MetricStats(avg=stats[1], min=stats[2], max=stats[3]),
        current=MetricStats(avg=stats[4], min=stats[5], max=stats[6]),
        temperature=MetricStats(avg=stats[7], min=stats[8], max=stats[9]),
    )
    latest_reading = (
        LatestReading(ts=latest[0], voltage=latest[1], current=latest[2], temperature=latest[3], extra=latest[4])
        if latest
        else None
    )
    return DeviceDetail(**dict(summary), latest_reading=latest_reading, stats=window_stats)


@router.put(
    "/devices/{device_id}",
    response_model=DeviceSummary,
    dependencies=AdminAccess,
    responses={**NOT_FOUND, **FORBIDDEN, **BAD_BODY},
    summary="Set a device's profile (admin)",
)
def put_device(device_id: DeviceId, profile: DeviceProfile) -> DeviceSummary:
    with connection() as conn:
        if not devices.set_profile(conn, device_id, profile.model_dump()):
            raise HTTPException(status_code=404, detail=f"device {device_id!r} not found")
        return fetch_summary(conn, device_id)
