"""The demo fleet `gridmon up` runs: who the devices are, their history, one slow degradation.

All of it follows from the fleet identity (`gridmon.simulator.identity`), so it is the same on
every start with one data directory:
- `demo_devices`: each device's profile as the API stores it — kind (transformer, feeder,
  meter), location, nominal voltage, rated current and, for transformers, a temperature limit;
- `demo_degradation`: one transformer warms up over days, at a real-time pace. It started two
  days before the fleet was created and reaches its temperature limit three days after, so on
  the first start the maintenance outlook already dates the failure, days ahead. At the failure
  time the device is "repaired": its temperature returns to normal;
- `demo_history`: readings of the whole fleet over a span before now (the same device model,
  profiles and degradation as the live simulator, plus a few faults from the catalogue), with
  the ground truth of their faults: what `gridmon up` backfills on the first start, so a trend,
  a model and predictions exist within minutes instead of after a day.

Pure: no clock, no I/O; the caller passes the times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridmon.domain.units import DAY_S
from gridmon.simulator.catalogue import FAULT_KINDS, Fault
from gridmon.simulator.dataset import _frame, _inject, _kind_sequence, _times
from gridmon.simulator.device import VALUE_DECIMALS, DeviceProfile, device_name, make_profile, normal_arrays
from gridmon.simulator.identity import FleetIdentity

KINDS = ("transformer", "feeder", "feeder", "meter")
SUBSTATIONS = ("North", "Harbour", "Mill Lane", "Ridge", "Station Road", "Airfield", "Quarry", "Riverside")
BAYS = 6
NOMINAL_VOLTAGE = 230.0
RATED_CURRENT = 10.0
TRANSFORMER_LIMIT_C = 70.0
DEGRADATION_BEFORE_S = 2 * DAY_S  # the scripted degradation began this long before the fleet was created
DEGRADATION_AFTER_S = 3 * DAY_S  # …and reaches the limit this long after
HISTORY_KINDS = tuple(k for k in FAULT_KINDS if k != "degradation")  # the scripted one is the degradation


@dataclass(frozen=True)
class DemoDevice:
    """One device's profile, with the API's field names."""

    device_id: str
    kind: str
    location: str
    nominal_voltage: float
    rated_current: float
    temperature_limit: float | None

    def profile(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "location": self.location,
            "nominal_voltage": self.nominal_voltage,
            "rated_current": self.rated_current,
            "temperature_limit": self.temperature_limit,
        }


@dataclass(frozen=True)
class Degradation:
    """A temperature trend rising linearly from `onset` until it reaches `limit_c` at `failure_at`
    (then the device is repaired: no rise from `failure_at` on)."""

    device_id: str
    onset: float
    failure_at: float
    base_c: float
    limit_c: float

    @property
    def slope_c_per_day(self) -> float:
        return (self.limit_c - self.base_c) / (self.failure_at - self.onset) * DAY_S

    def rise(self, ts: float) -> float:
        """Degrees added to the device's normal temperature at `ts`."""
        if ts <= self.onset or ts >= self.failure_at:
            return 0.0
        return (ts - self.onset) / DAY_S * self.slope_c_per_day

    def rise_array(self, ts: np.ndarray) -> np.ndarray:
        inside = (ts > self.onset) & (ts < self.failure_at)
        return np.where(inside, (ts - self.onset) / DAY_S * self.slope_c_per_day, 0.0)

    def fault(self) -> Fault:
        """Its ground truth (complete once `failure_at` has passed)."""
        return Fault(
            device_id=self.device_id,
            kind="degradation",
            start=self.onset,
            end=self.failure_at,
            failure_at=self.failure_at,
            params={"slope_c_per_day": round(self.slope_c_per_day, 3), "limit_c": self.limit_c},
        )


def fleet_profiles(identity: FleetIdentity, count: int) -> list[DeviceProfile]:
    """The normal behaviour of devices 0 … count−1 (device k's does not depend on `count`)."""
    return [make_profile(k, np.random.default_rng((identity.seed, 5, k))) for k in range(count)]


def demo_devices(identity: FleetIdentity, count: int) -> list[DemoDevice]:
    """The profiles the API shows for devices 0 … count−1."""
    rng = np.random.default_rng((identity.seed, 6))
    substations = [SUBSTATIONS[int(k)] for k in rng.permutation(len(SUBSTATIONS))]
    devices = []
    for k in range(count):
        kind = KINDS[k % len(KINDS)]
        station = substations[(k // BAYS) % len(substations)]
        devices.append(
            DemoDevice(
                device_id=device_name(k),
                kind=kind,
                location=f"{station} substation · bay {k % BAYS + 1}",
                nominal_voltage=NOMINAL_VOLTAGE,
                rated_current=RATED_CURRENT,
                temperature_limit=TRANSFORMER_LIMIT_C if kind == "transformer" else None,
            )
        )
    return devices


def demo_degradation(identity: FleetIdentity, profiles: Sequence[DeviceProfile]) -> Degradation | None:
    """The scripted degradation: the second transformer (the first with fewer than five devices)."""
    transformers = [k for k in range(len(profiles)) if KINDS[k % len(KINDS)] == "transformer"]
    if not transformers:
        return None
    profile = profiles[transformers[1] if len(transformers) > 1 else transformers[0]]
    return Degradation(
        device_id=profile.device_id,
        onset=identity.created_at - DEGRADATION_BEFORE_S,
        failure_at=identity.created_at + DEGRADATION_AFTER_S,
        base_c=profile.temperature,
        limit_c=TRANSFORMER_LIMIT_C,
    )


def demo_history(
    profiles: Sequence[DeviceProfile],
    *,
    start: float,
    end: float,
    interval_s: float,
    seed: int,
    faults_per_device_day: float = 1.0,
    degradation: Degradation | None = None,
) -> tuple[pd.DataFrame, list[Fault]]:
    """Readings of every device in [start, end) about every `interval_s` (ordered by time), and
    the faults in them: catalogue faults (no degradation) and the part of `degradation` that
    ended before `end`."""
    n = int((end - start) // interval_s)
    if n < 1:
        raise ValueError("the history must span at least one interval")
    plan_rng = np.random.default_rng((seed, 9))
    expected = max(faults_per_device_day, 0.0) * (end - start) / DAY_S
    frames: list[pd.DataFrame] = []
    truth: list[Fault] = []
    for index, profile in enumerate(profiles):
        rng = np.random.default_rng((seed, 8, index))
        ts = _times(start, interval_s, n, rng)
        v, i, t = normal_arrays(profile, ts, rng, daily_cycle=True)
        if degradation is not None and profile.device_id == degradation.device_id:
            t = t + degradation.rise_array(ts)
        v, i, t = (np.round(a, VALUE_DECIMALS) for a in (v, i, t))
        count = math.floor(expected) + int(plan_rng.random() < expected % 1.0)
        kinds = _kind_sequence(HISTORY_KINDS, count, plan_rng) if count else []
        truth.extend(
            _inject(profile, ts, (v, i, t), kinds, rng, interval_s=interval_s, warmup_s=3600.0, time_compression=1.0)
        )
        frames.append(_frame(profile.device_id, ts, v, i, t))
    if degradation is not None and degradation.failure_at < end:
        truth.append(degradation.fault())
    readings = pd.concat(frames, ignore_index=True).sort_values(["ts", "device_id"], kind="stable", ignore_index=True)
    truth.sort(key=lambda f: (f.start, f.device_id))
    return readings, truth
