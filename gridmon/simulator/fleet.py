"""The live fleet: sensors stepped one reading at a time, with faults injected as they go.

Pure state machine — the caller supplies the time of each reading, so a test can drive it with
a fake clock and get the same readings and faults every time for a given seed.

`anomaly_rate` is, like the original design's "~1 % chance", the probability that a healthy
reading starts a fault. A fault then lasts as its catalogue entry says (a spike a few readings,
overheating minutes, degradation until its compressed failure time), and at least
`MIN_GAP_READINGS` healthy readings separate two faults of one device (also at start-up, so
detectors see some normal history first).

Two seeds: `fleet_seed` decides who the devices are (their normal levels and phase; kept per
data directory by `gridmon.simulator.identity`), `seed` the noise and the faults of one run. A
scripted `degradation` (the demo's, `gridmon.simulator.demo`) is added on top of its device's
temperature as a function of time; its ground truth is reported once its failure time passed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gridmon.domain.readings import Reading
from gridmon.simulator.catalogue import (
    DEFAULT_TIME_COMPRESSION,
    Fault,
    FaultPlan,
    apply_fault,
    choose_kind,
    plan_fault,
    validate_kinds,
)
from gridmon.simulator.demo import Degradation
from gridmon.simulator.device import VALUE_DECIMALS, DeviceProfile, make_profile

MIN_GAP_READINGS = 30


@dataclass
class _Device:
    profile: DeviceProfile
    rnd: random.Random  # per-reading noise: the stdlib generator is fast for scalars
    rng: np.random.Generator  # fault planning: the catalogue's generator
    onset: random.Random  # own stream, so the healthy values do not depend on the fault settings
    cooldown: int = MIN_GAP_READINGS
    last: tuple[float, float, float] | None = None
    plan: FaultPlan | None = None
    fault_start: float = 0.0
    fault_count: int = 0
    fault_last_ts: float = 0.0
    frozen: tuple[float, float, float] | None = None


class Fleet:
    """`devices` simulated sensors (`sensor_0` …) with seeded noise and fault injection."""

    def __init__(
        self,
        *,
        devices: int = 10,
        seed: int = 0,
        anomaly_rate: float = 0.01,
        kinds: Sequence[str] | None = None,
        time_compression: float = DEFAULT_TIME_COMPRESSION,
        daily_cycle: bool = True,
        fleet_seed: int | None = None,
        degradation: Degradation | None = None,
    ) -> None:
        if devices < 1:
            raise ValueError("devices must be >= 1")
        if not 0.0 <= anomaly_rate <= 1.0:
            raise ValueError("anomaly_rate must be within [0, 1]")
        if time_compression <= 0:
            raise ValueError("time_compression must be positive")
        self.kinds = validate_kinds(kinds)
        self.anomaly_rate = anomaly_rate
        self.time_compression = time_compression
        self.daily_cycle = daily_cycle
        self.degradation = degradation
        self._degradation_live = False  # this run saw it before its failure time (then it reports it)
        identity = seed if fleet_seed is None else fleet_seed
        self._devices = [
            _Device(
                profile=make_profile(k, np.random.default_rng((identity, 5, k))),
                rnd=random.Random(f"{seed}:{k}"),
                rng=np.random.default_rng((seed, 4, k)),
                onset=random.Random(f"{seed}:{k}:onset"),
            )
            for k in range(devices)
        ]
        self._finished: list[Fault] = []
        self.faults_started: Counter[str] = Counter()
        self.anomalous_readings = 0

    @property
    def profiles(self) -> list[DeviceProfile]:
        """Each device's normal behaviour (fixed by the fleet seed)."""
        return [d.profile for d in self._devices]

    @property
    def device_ids(self) -> list[str]:
        return [d.profile.device_id for d in self._devices]

    def __len__(self) -> int:
        return len(self._devices)

    def reading(self, index: int, now: float) -> Reading:
        """The reading device `index` takes at `now` (epoch seconds), faults applied."""
        dev = self._devices[index]
        v, i, t = dev.profile.normal(now, dev.rnd, self.daily_cycle)
        scripted = self.degradation
        if scripted is not None and scripted.device_id == dev.profile.device_id:
            t += scripted.rise(now)
            if now < scripted.failure_at:
                self._degradation_live = True
            elif self._degradation_live:
                self._degradation_live = False
                self._finished.append(scripted.fault())
        if dev.plan is not None and not dev.plan.covers(now - dev.fault_start, dev.fault_count):
            self._finish(dev)
        if dev.plan is None:
            if dev.cooldown > 0:
                dev.cooldown -= 1
            elif (
                self.kinds and self.anomaly_rate > 0 and dev.last is not None and dev.onset.random() < self.anomaly_rate
            ):
                self._start(dev, now)
        if dev.plan is not None:
            v, i, t = self._apply(dev, now, v, i, t)
        v, i, t = round(v, VALUE_DECIMALS), round(i, VALUE_DECIMALS), round(t, VALUE_DECIMALS)
        dev.last = (v, i, t)
        return Reading(dev.profile.device_id, now, v, i, t)

    def _start(self, dev: _Device, now: float) -> None:
        kind = choose_kind(self.kinds, dev.rng)
        dev.plan = plan_fault(kind, dev.rng, profile=dev.profile, time_compression=self.time_compression)
        dev.fault_start = now
        dev.fault_count = 0
        dev.frozen = dev.last
        self.faults_started[kind] += 1

    def _apply(self, dev: _Device, now: float, v: float, i: float, t: float) -> tuple[float, float, float]:
        plan = dev.plan
        assert plan is not None
        progress = (now - dev.fault_start) / plan.duration_s if plan.duration_s > 0 else 0.0
        fv, fi, ft = apply_fault(
            plan.kind, plan.params, np.array([progress]), np.array([v]), np.array([i]), np.array([t]), dev.frozen
        )
        dev.fault_count += 1
        dev.fault_last_ts = now
        self.anomalous_readings += 1
        return float(fv[0]), float(fi[0]), float(ft[0])

    def _finish(self, dev: _Device) -> None:
        plan = dev.plan
        assert plan is not None
        offset = plan.failure_offset_s
        self._finished.append(
            Fault(
                device_id=dev.profile.device_id,
                kind=plan.kind,
                start=dev.fault_start,
                end=dev.fault_last_ts,
                failure_at=None if offset is None else dev.fault_start + offset,
                params=dict(plan.params),
            )
        )
        dev.plan = None
        dev.frozen = None
        dev.cooldown = MIN_GAP_READINGS

    def take_finished(self) -> list[Fault]:
        """Faults that ended since the last call (their ground truth is now complete)."""
        done, self._finished = self._finished, []
        return done

    def finish_all(self) -> list[Fault]:
        """End every fault in progress (at its last affected reading) and return all finished."""
        for dev in self._devices:
            if dev.plan is not None and dev.fault_count > 0:
                self._finish(dev)
        return self.take_finished()
