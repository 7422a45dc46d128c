"""The expected band of a device's metrics as its detector sees it now.

For the dashboard's chart and for operators: per metric, what the detector expects at a given
time of day and how far from it a value may go before it counts as outside its band (the
band's tail probability is `DetectorParams.band_p`). With the seasonal model in use the
expectation follows the median of the last days' same time of day, or, where the weekly profile
is in use, of the last weeks' same hour of the same weekday; otherwise it is the recent level
(flat). Metrics without a calibrated band yet are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gridmon.detection.stream import state as S
from gridmon.detection.stream.state import DeviceState
from gridmon.domain.units import DAY_S


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
    slots = ((ts % DAY_S) / (DAY_S / S.SEASON_SLOTS)).astype(np.int64) % S.SEASON_SLOTS
    weekdays = np.floor(ts / DAY_S).astype(np.int64) % 7
    hours = slots // (S.SEASON_SLOTS // S.HOURS)
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
            shape = profile[slots]
            if state.met[j, S.M_WEEK] > 0.0:
                weekly = _weekly_profile(state, j)[weekdays, hours]
                shape = np.where(np.isnan(weekly), shape, weekly)
            expected = state.met[j, S.M_L1] + np.nan_to_num(shape, nan=0.0)
        else:
            expected = np.full(ts.shape, state.met[j, S.M_L0])
        out.append(MetricBand(metric, f == 1, expected, expected - half, expected + half))
    return out


def _weekly_profile(state: DeviceState, j: int) -> np.ndarray:
    """Metric j's hourly profile by weekday (7 × 24): each hour's median over the stored days of
    that weekday (today's row included where filled); NaN where none is stored."""
    today = int(state.dev[S.D_DAY])
    days = np.arange(today - S.WEEK_RING_DAYS + 1, today + 1)
    rows = state.wring[j, days % S.WEEK_RING_DAYS].astype(np.float64)
    out = np.full((7, S.HOURS), np.nan)
    for weekday in range(7):
        mine = rows[days % 7 == weekday]
        if len(mine):
            with np.errstate(all="ignore"):
                out[weekday] = np.nanmedian(mine, axis=0)
    return out
