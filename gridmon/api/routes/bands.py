"""The expected band of a device's metrics, from its anomaly detector's state."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from gridmon.api.auth import ReadAccess
from gridmon.api.errors import DATA_RESPONSES
from gridmon.api.params import DeviceId, IsoDatetime, aware, now_utc
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
    scored: bool
    """False until a scan has scored the device (then `ts` and `metrics` are empty)."""
    ts: list[datetime]
    metrics: list[BandSeries]


def _clean(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


@router.get(
    "/devices/{device_id}/band",
    response_model=DeviceBandResponse,
    dependencies=ReadAccess,
    summary="What the anomaly detector expects of each metric, and its band, over a time range",
)
def get_band(
    device_id: DeviceId,
    start: Annotated[IsoDatetime | None, Query(description="Default: 24 h before `end`. Naive = UTC.")] = None,
    end: Annotated[IsoDatetime | None, Query(description="Default: now.")] = None,
    points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = 288,
) -> DeviceBandResponse:
    stop = aware(end) if end is not None else now_utc()
    begin = aware(start) if start is not None else stop - timedelta(hours=24)
    if begin >= stop:
        raise HTTPException(status_code=422, detail="start must be before end")
    band = device_band(device_id, begin.timestamp(), stop.timestamp(), points)
    if band is None:
        # Not an error: a device is watched from its first scan on; the chart says so.
        return DeviceBandResponse(device_id=device_id, scored=False, ts=[], metrics=[])
    return DeviceBandResponse(
        device_id=device_id,
        scored=True,
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
