"""The expected band of one device over a time range, from its stored detector state (for the API).

The state is the scan's latest: the band shows what the detector expects at each time of day
now, which is what the dashboard draws behind the readings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmon.detection.stream.band import MetricBand, expected_band
from gridmon.detection.stream.state import DeviceState
from gridmon.storage import db, detector_state


@dataclass(frozen=True)
class DeviceBand:
    """The times asked for and one band per metric (empty when the device has no state yet)."""

    ts: np.ndarray
    metrics: list[MetricBand]


def device_band(device_id: str, start: float, end: float, points: int) -> DeviceBand | None:
    """`points` evenly spaced times in [start, end]; None when the device has no detector state."""
    with db.connection() as conn:
        stored = detector_state.load_one(conn, device_id)
    if stored is None:
        return None
    state = DeviceState.from_bytes(stored.state)
    if state is None:
        return None
    ts = np.linspace(start, end, max(points, 2))
    return DeviceBand(ts=ts, metrics=expected_band(state, ts))
