"""The expected band of a device's metrics as its detector sees it now.

For the dashboard's chart and for operators: per metric, what the detector expects at a given
time of day and how far from it a value may go before it counts as outside its band (the
band's tail probability is `DetectorParams.band_p`). With the seasonal model in use the
expectation follows the median of the last days' same time of day; otherwise it is the recent
level (flat). Metrics without a calibrated band yet are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gridmon.detection.stream import state as S
from gridmon.detection.stream.state import DeviceState

DAY = 86400.0


@dataclass(frozen=True)
class MetricBand:
    """Expected value and band at the requested times (arrays of equal length)."""

    metric: str
    seasonal: bool
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray


def expected_band(state: DeviceState, ts: np.ndarray) -> list[MetricBand]:
    """The band of every metric with a calibrated band, at the times `ts` (epoch s)."""
    ts = np.asarray(ts, dtype=np.float64)
    slots = ((ts % DAY) / (DAY / S.SEASON_SLOTS)).astype(np.int64) % S.SEASON_SLOTS
    out = []
    for j, metric in enumerate(state.metrics):
        f = int(state.met[j, S.M_SEL])
        band2 = state.cal[j, f, S.S_POINT, S.C_BAND]
        if band2 <= 0.0:
            continue
        floor = max(1e-3 * state.met[j, S.M_NU], 1e-12)
        half = math.sqrt(band2) * max(state.fam[j, f, S.F_SCALE], floor)
        if f == 1:
            # Each slot's median over the stored days (today's row included where filled).
            with np.errstate(all="ignore"):
                profile = np.nanmedian(state.ring[j].astype(np.float64), axis=0)
            expected = state.met[j, S.M_L1] + np.nan_to_num(profile[slots], nan=0.0)
        else:
            expected = np.full(ts.shape, state.met[j, S.M_L0])
        out.append(MetricBand(metric, f == 1, expected, expected - half, expected + half))
    return out
