"""The expected band of a device's metrics, from its anomaly detector's state."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from gridmon.api.auth import ReadAccess
from gridmon.api.errors import DATA_RESPONSES, NOT_FOUND
from gridmon.api.params import DeviceId, now_utc
from gridmon.jobs.bands import device_band

router = APIRouter(tags=["devices"], responses=DATA_RESPONSES)

MAX_POINTS = 1000


class BandSeries(BaseModel):
    """One metric's expectation and band at `ts` (null where not known)."""

    metric: str
    seasonal: bool
    expected: list[float | None]
    low: list[float | None]
    high: list[float | None]


class DeviceBandResponse(BaseModel):
    device_id: str
    ts: list[datetime]
    metrics: list[BandSeries]


def _clean(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


@router.get(
    "/devices/{device_id}/band",
    response_model=DeviceBandResponse,
    dependencies=ReadAccess,
    responses=NOT_FOUND,
    summary="What the anomaly detector expects of each metric, and its band, over a time range",
)
def get_band(
    device_id: DeviceId,
    start: Annotated[datetime | None, Query(description="Default: 24 h before `end`.")] = None,
    end: Annotated[datetime | None, Query(description="Default: now.")] = None,
    points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = 288,
) -> DeviceBandResponse:
    stop = end or now_utc()
    begin = start or stop - timedelta(hours=24)
    if begin >= stop:
        raise HTTPException(status_code=422, detail="start must be before end")
    band = device_band(device_id, begin.timestamp(), stop.timestamp(), points)
    if band is None:
        raise HTTPException(status_code=404, detail=f"no detector state for device {device_id!r} yet")
    return DeviceBandResponse(
        device_id=device_id,
        ts=[datetime.fromtimestamp(t, tz=stop.tzinfo) for t in band.ts],
        metrics=[
            BandSeries(
                metric=m.metric,
                seasonal=m.seasonal,
                expected=_clean(m.expected.tolist()),
                low=_clean(m.low.tolist()),
                high=_clean(m.high.tolist()),
            )
            for m in band.metrics
        ],
    )
