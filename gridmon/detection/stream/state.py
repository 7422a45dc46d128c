"""A device's detector state: everything the streaming detector carries from one reading to the next.

The scan stores it between runs (`to_bytes` / `from_bytes`: a few kilobytes compressed), so a
scan reads only new readings and a worker that dies mid-scan loses nothing: the next one resumes from the last committed
state. The layout is a handful of numpy arrays indexed by the constants below; the compiled
kernel (`kernel.py`) reads and writes them in place.

Per device: `dev` (cadence, clock, device-level alarms). Per metric (`met`), per metric and
expectation model (`fam`: 0 = recent level, 1 = seasonal), per score (`cal` + `hist`), and the
seasonal ring of the last days' time-of-day means (`ring`) and the weekly ring of the last
weeks' hourly means (`wring`). The device shift-energy score and
the forest score have a histogram and calibration row each (`dhist`/`dcal`, `fhist`/`fcal`), and
so has the relation score (`rhist`/`rcal`), whose running mean, covariance and precision of the
metrics' z are `rel` (k × (2k + 1): covariance, precision, mean).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from gridmon.detection.stream.calib import NB

STATE_VERSION = 8

# dev[]
D_VERSION, D_N, D_DT, D_LAST_TS, D_DAY, D_SLOT, D_WEIGHT = 0, 1, 2, 3, 4, 5, 6
# each device-level score's alarm: four consecutive slots (alarm, readings inside its band, opening
# time, recent peak), in this order (kernel `_device_alarm`)
D_ALARM, D_BELOW, D_OPEN, D_REC = 7, 8, 9, 10
F_ALARM, F_BELOW, F_OPEN, F_REC = 11, 12, 13, 14
# episode bookkeeping written by the Python side (open alert of the device); E_PEAK and
# E_PEAK_TS are no longer written (the alert keeps its peak) and stay as slots of the layout
E_START, E_PEAK, E_PEAK_TS, E_LAST = 15, 16, 17, 18
# the device's nuisance-alarm rate (kernel `_count_nuisance`, `_nuisance_factor`): decayed count of
# low, short alarm episodes and decayed watched days; the open episode's first reading, peak
# ratio and last clear (reading numbers); whether the previous reading was in alarm
D_NUISANCE, D_WATCHED, D_EPISODE_N, D_EPISODE_PEAK, D_CLEAR_N, D_IN_ALARM = 19, 20, 21, 22, 23, 24
# the relation score (Hotelling's T² of the metrics' z): its alarm, as D_* for the shift energy,
# the readings its covariance has learnt and the ones since its precision was last fitted
R_ALARM, R_BELOW, R_OPEN, R_REC, R_N, R_SINCE = 25, 26, 27, 28, 29, 30
# each device-level score's on-delay: readings in a row, while its alarm is off, since the score
# passed its threshold and that stayed beyond its band (kernel `_device_alarm`)
D_PENDING, F_PENDING, R_PENDING = 31, 32, 33
# all of the relation score's (reset together)
R_SLOTS = (R_ALARM, R_BELOW, R_OPEN, R_REC, R_N, R_SINCE, R_PENDING)
N_DEV = 34
N_DEV_V3 = 19  # states written before the nuisance rate (version 3): read with these slots zero
N_DEV_V6 = 25  # states of versions 4 to 6, before the relation score
N_DEV_V7 = 31  # states of version 7, before the on-delay

# met[j]
M_NJ, M_NU, M_L0, M_L1, M_RUN, M_PREV, M_ALARM, M_BELOW, M_OPEN = 0, 1, 2, 3, 4, 5, 6, 7, 8
M_AAB0, M_AAB1, M_NAB, M_SLOT_SUM, M_SLOT_CNT, M_SEL, M_SEEN = 9, 10, 11, 12, 13, 14, 15
# track records of the daily and the weekly profile (mean clipped absolute residual, readings
# counted) and whether the weekly one is in use
M_AABD, M_AABW, M_NAW, M_WEEK = 16, 17, 18, 19
# repeating short events: the reading number (M_SEEN) at which the metric's alarm episode began,
# and at which it last cleared while the episode may still go on (0: none pending)
M_EP_START, M_EP_CLEAR = 20, 21
# the on-delay: readings in a row, while the metric's alarm is off, since a score passed its
# threshold that stayed beyond a threshold or outside the band
M_PENDING = 22
N_MET = 23
N_MET_V7 = 22  # states of versions 6 and 7, before the on-delay
N_MET_V4 = 16  # states written before the weekly profile (versions 3 and 4): read with these slots zero
N_MET_V5 = 20  # states written before repeating events were recognised (version 5)

# fam[j, f]
F_SCALE, F_COUNT, F_EWZ, F_EA, F_EWL, F_EWC = 0, 1, 2, 3, 4, 5
N_FAM = 6

# scores
S_POINT, S_SHIFT, S_SPREAD, S_FLAT, S_LONG = 0, 1, 2, 3, 4
N_SCORES = 5
SCORE_NAMES = ("point", "shift", "spread", "flat", "long_shift")

# cal[..., c]
C_TOTAL, C_COUNT, C_THR, C_BAND, C_SINCE, C_REC, C_MAX, C_RAW = 0, 1, 2, 3, 4, 5, 6, 7
# repeating short events, in the metric's units: the open alarm episode's peak, and the largest
# and second largest peaks of earlier short episodes (times the decay weight D_WEIGHT of when
# they were stored: divided by today's weight they have decayed like the histograms)
C_EPK, C_REP1, C_REP2 = 8, 9, 10
N_CAL = 11
N_CAL_V5 = 8  # states of versions 3 to 5: read with these slots zero

FAMILIES = 2
SEASON_SLOTS = 96  # 15-minute time-of-day slots
RING_DAYS = 4  # the last three days and today
WEEK_RING_DAYS = 22  # hourly means of the last three weeks and today
WEEK_WEEKS = 3  # the same hour of the same weekday in the previous weeks
HOURS = 24


@dataclass
class DeviceState:
    """The arrays of one device, for the metrics in `metrics` (in that order)."""

    metrics: tuple[str, ...]
    dev: np.ndarray
    met: np.ndarray
    fam: np.ndarray
    hist: np.ndarray
    cal: np.ndarray
    ring: np.ndarray
    wring: np.ndarray
    dhist: np.ndarray
    dcal: np.ndarray
    fhist: np.ndarray
    fcal: np.ndarray
    rel: np.ndarray
    rhist: np.ndarray
    rcal: np.ndarray

    @classmethod
    def new(cls, metrics: tuple[str, ...] | list[str]) -> DeviceState:
        names = tuple(metrics)
        k = len(names)
        dev = np.zeros(N_DEV)
        dev[D_VERSION] = STATE_VERSION
        dev[D_WEIGHT] = 1.0
        dev[D_DAY] = -1.0
        dev[D_SLOT] = -1.0
        dev[[E_START, E_PEAK_TS, E_LAST]] = np.nan
        met = np.zeros((k, N_MET))
        met[:, M_PREV] = np.nan
        fam = np.zeros((k, FAMILIES, N_FAM))
        fam[:, :, F_EA] = 1.0
        return cls(
            metrics=names,
            dev=dev,
            met=met,
            fam=fam,
            hist=np.zeros((k, FAMILIES, N_SCORES, NB), dtype=np.float32),
            cal=np.zeros((k, FAMILIES, N_SCORES, N_CAL)),
            ring=np.full((k, RING_DAYS, SEASON_SLOTS), np.nan, dtype=np.float32),
            wring=np.full((k, WEEK_RING_DAYS, HOURS), np.nan, dtype=np.float32),
            dhist=np.zeros(NB, dtype=np.float32),
            dcal=np.zeros(N_CAL),
            fhist=np.zeros(NB, dtype=np.float32),
            fcal=np.zeros(N_CAL),
            rel=np.zeros((k, 2 * k + 1)),
            rhist=np.zeros(NB, dtype=np.float32),
            rcal=np.zeros(N_CAL),
        )

    def with_metrics(self, metrics: tuple[str, ...] | list[str]) -> DeviceState:
        """This state extended by metrics it has not seen yet (fresh rows for them); existing
        metrics keep their state. Metrics are never dropped: a metric missing from a batch is
        simply not updated. The relation score starts afresh: its covariance spans every metric."""
        extra = [m for m in metrics if m not in self.metrics]
        if not extra:
            return self
        fresh = DeviceState.new(extra)
        dev = self.dev.copy()
        dev[list(R_SLOTS)] = 0.0
        k = len(self.metrics) + len(extra)
        return DeviceState(
            metrics=self.metrics + tuple(extra),
            dev=dev,
            met=np.concatenate([self.met, fresh.met]),
            fam=np.concatenate([self.fam, fresh.fam]),
            hist=np.concatenate([self.hist, fresh.hist]),
            cal=np.concatenate([self.cal, fresh.cal]),
            ring=np.concatenate([self.ring, fresh.ring]),
            wring=np.concatenate([self.wring, fresh.wring]),
            dhist=self.dhist,
            dcal=self.dcal,
            fhist=self.fhist,
            fcal=self.fcal,
            rel=np.zeros((k, 2 * k + 1)),
            rhist=np.zeros(NB, dtype=np.float32),
            rcal=np.zeros(N_CAL),
        )

    def copy(self) -> DeviceState:
        return DeviceState(
            self.metrics,
            *(np.array(a, copy=True) for a in self._arrays()),
        )

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.dev,
            self.met,
            self.fam,
            self.hist,
            self.cal,
            self.ring,
            self.wring,
            self.dhist,
            self.dcal,
            self.fhist,
            self.fcal,
            self.rel,
            self.rhist,
            self.rcal,
        )

    def reset_forest(self) -> None:
        """Forget the forest score's calibration and alarm (a new forest version is in use)."""
        self.fhist[:] = 0.0
        self.fcal[:] = 0.0
        self.dev[[F_ALARM, F_BELOW, F_OPEN, F_REC, F_PENDING]] = 0.0

    @property
    def readings(self) -> int:
        return int(self.dev[D_N])

    @property
    def last_ts(self) -> float | None:
        return float(self.dev[D_LAST_TS]) if self.dev[D_N] > 0 else None

    def to_bytes(self) -> bytes:
        """Compact serialisation: a small header (magic, version, metric names) and the raw
        arrays in a fixed order, zlib-compressed (most of a young state is zeros)."""
        names = json.dumps(list(self.metrics)).encode()
        head = _MAGIC + struct.pack("<HI", STATE_VERSION, len(names)) + names
        body = b"".join(np.ascontiguousarray(a).tobytes() for a in self._arrays())
        return zlib.compress(head + body, 1)

    @classmethod
    def from_bytes(cls, blob: bytes) -> DeviceState | None:
        """The state in `blob`, or None when it was written by an unknown state version.
        States of versions 3 to 7 are read with what later versions added at its start
        (zero slots, an empty weekly ring, a relation score that has learnt nothing, no pending
        on-delay)."""
        raw = bytearray(zlib.decompress(blob))
        if raw[:4] != _MAGIC:
            return None
        version, size = struct.unpack_from("<HI", raw, 4)
        if version not in (3, 4, 5, 6, 7, STATE_VERSION):
            return None
        at = 10 + size
        metrics = tuple(json.loads(bytes(raw[10:at]).decode()))
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in _layout(len(metrics), version):
            count = math.prod(shape)
            arrays[name] = np.frombuffer(raw, dtype=dtype, count=count, offset=at).reshape(shape)
            at += count * np.dtype(dtype).itemsize
        if at != len(raw):
            return None
        if version == STATE_VERSION:
            return cls(metrics, **arrays)
        state = cls.new(metrics)
        for name, old in arrays.items():
            into = getattr(state, name)
            if name == "dev":
                into[: old.size] = old
                into[D_VERSION] = STATE_VERSION
            elif name in ("met", "cal", "dcal", "fcal"):
                into[..., : old.shape[-1]] = old
            else:
                into[...] = old
        return state


_MAGIC = b"GMS1"


def _layout(k: int, version: int = STATE_VERSION) -> list[tuple[str, type, tuple[int, ...]]]:
    """(field, dtype, shape) of each array of a k-metric state of `version`, in serialisation order."""
    f32, f64 = np.float32, np.float64
    ncal = N_CAL_V5 if version < 6 else N_CAL
    n_dev = N_DEV_V3 if version == 3 else N_DEV_V6 if version < 7 else N_DEV_V7 if version == 7 else N_DEV
    n_met = N_MET_V4 if version < 5 else N_MET_V5 if version == 5 else N_MET_V7 if version < 8 else N_MET
    items: list[tuple[str, type, tuple[int, ...]]] = [
        ("dev", f64, (n_dev,)),
        ("met", f64, (k, n_met)),
        ("fam", f64, (k, FAMILIES, N_FAM)),
        ("hist", f32, (k, FAMILIES, N_SCORES, NB)),
        ("cal", f64, (k, FAMILIES, N_SCORES, ncal)),
        ("ring", f32, (k, RING_DAYS, SEASON_SLOTS)),
    ]
    if version >= 5:
        items.append(("wring", f32, (k, WEEK_RING_DAYS, HOURS)))
    items += [("dhist", f32, (NB,)), ("dcal", f64, (ncal,)), ("fhist", f32, (NB,)), ("fcal", f64, (ncal,))]
    if version >= 7:
        items += [("rel", f64, (k, 2 * k + 1)), ("rhist", f32, (NB,)), ("rcal", f64, (ncal,))]
    return items
