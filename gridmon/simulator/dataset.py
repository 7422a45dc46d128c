"""Pure, deterministic datasets for scoring: readings plus the ground truth of their faults.

No I/O, no clock: the same arguments give the same frame on every machine. `gridmon eval` scores
detection on `generate_dataset`; `gridmon eval maintenance` scores failure-time prediction on
`degradation_scenario` and `healthy_scenario`. All use the live simulator's device model
(`gridmon.simulator.device`) and fault catalogue (`gridmon.simulator.catalogue`).

Frames have the columns `device_id` (str), `ts` (float, UTC epoch seconds, millisecond
resolution), `voltage`, `current`, `temperature` (float, rounded as on the wire) and are sorted
by `device_id`, `ts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridmon.domain.units import DAY_S
from gridmon.simulator.catalogue import (
    DEFAULT_LIMIT_C,
    Fault,
    FaultPlan,
    apply_fault,
    plan_fault,
    validate_kinds,
)
from gridmon.simulator.device import (
    NOISE_TEMPERATURE,
    VALUE_DECIMALS,
    DeviceProfile,
    make_profile,
    normal_arrays,
)

COLUMNS = ("device_id", "ts", "voltage", "current", "temperature")
# Degradation that takes days in the field is compressed into hours in a dataset.
DATASET_TIME_COMPRESSION = 48.0
JITTER = 0.4  # reading k comes up to this fraction of an interval late, as real sensors do
MIN_GAP_READINGS = 30  # faults on one device are at least this far apart (and from the edges)


@dataclass
class Dataset:
    """Readings of a simulated fleet and the faults injected into them."""

    readings: pd.DataFrame
    truth: list[Fault]
    devices: list[str] = field(default_factory=list)
    fault_free: list[str] = field(default_factory=list)
    """Devices that were given no faults (for false-alarm measurement)."""


def _times(start: float, interval_s: float, n: int, rng: np.random.Generator) -> np.ndarray:
    jitter = rng.uniform(0.0, JITTER, n) * interval_s
    return np.round(start + np.arange(n) * interval_s + jitter, 3)


def _frame(device_id: str, ts: np.ndarray, v: np.ndarray, i: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device_id": np.full(len(ts), device_id, dtype=object),
            "ts": ts,
            "voltage": np.round(v, VALUE_DECIMALS),
            "current": np.round(i, VALUE_DECIMALS),
            "temperature": np.round(t, VALUE_DECIMALS),
        }
    ).astype({"device_id": str})


def _kind_sequence(kinds: tuple[str, ...], total: int, rng: np.random.Generator) -> list[str]:
    """`total` kinds, balanced: consecutive shuffled rounds of the whole list."""
    out: list[str] = []
    while len(out) < total:
        out.extend(kinds[k] for k in rng.permutation(len(kinds)))
    return out[:total]


def _inject(
    profile: DeviceProfile,
    ts: np.ndarray,
    values: tuple[np.ndarray, np.ndarray, np.ndarray],
    kinds: list[str],
    rng: np.random.Generator,
    *,
    interval_s: float,
    warmup_s: float,
    time_compression: float,
) -> list[Fault]:
    """Place `kinds` in equal slots of the device's timeline and apply them to `values` in place."""
    if not kinds:
        return []
    v, i, t = values
    gap_s = MIN_GAP_READINGS * interval_s
    first, last = ts[0] + warmup_s, ts[-1]
    slot = (last - first) / len(kinds)
    faults: list[Fault] = []
    for n_slot, kind in enumerate(kinds):
        plan = plan_fault(kind, rng, profile=profile, time_compression=time_compression)
        room = slot - 2 * gap_s
        needed = max(plan.duration_s, plan.min_readings * interval_s)
        if needed > room:
            # Too long for its slot (short datasets, many faults): shorten it rather than drop it.
            scale = 0.9 * room / needed
            params = dict(plan.params)
            if kind == "degradation":
                params["time_compression"] = params["time_compression"] / scale
            plan = FaultPlan(kind, plan.duration_s * scale, plan.min_readings, params)
            needed = max(plan.duration_s, plan.min_readings * interval_s)
            if needed > room or (kind == "degradation" and plan.duration_s < MIN_GAP_READINGS * interval_s):
                continue
        lo = first + n_slot * slot + gap_s
        at = lo + rng.uniform(0.0, max(room - needed, 0.0))
        i0 = int(np.searchsorted(ts, at))
        if i0 < 1 or i0 >= len(ts):
            continue
        rel = ts[i0:] - ts[i0]
        n_aff = min(len(rel), max(plan.min_readings, int(np.searchsorted(rel, plan.duration_s, side="right"))))
        sl = slice(i0, i0 + n_aff)
        progress = rel[:n_aff] / plan.duration_s if plan.duration_s > 0 else np.zeros(n_aff)
        frozen = (float(v[i0 - 1]), float(i[i0 - 1]), float(t[i0 - 1]))
        v[sl], i[sl], t[sl] = apply_fault(kind, plan.params, progress, v[sl], i[sl], t[sl], frozen)
        offset = plan.failure_offset_s
        faults.append(
            Fault(
                device_id=profile.device_id,
                kind=kind,
                start=float(ts[i0]),
                end=float(ts[i0 + n_aff - 1]),
                failure_at=None if offset is None else float(ts[i0]) + offset,
                params=dict(plan.params),
            )
        )
    return faults


def generate_dataset(
    *,
    devices: int = 10,
    duration_s: float = DAY_S,
    interval_s: float = 2.0,
    seed: int = 0,
    faults_per_device_day: float = 2.0,
    kinds: Sequence[str] | None = None,
    start: float = 1_767_225_600.0,
    daily_cycle: bool = True,
    fault_free_devices: int = 0,
    warmup_s: float | None = None,
    time_compression: float = DATASET_TIME_COMPRESSION,
) -> Dataset:
    """A fleet of `devices` sensors over `duration_s`, with faults of the catalogue injected.

    Each faulty device gets about `faults_per_device_day` faults per day (stochastically rounded),
    spread evenly over its timeline after `warmup_s` of clean history (default: 10 % of the
    duration, at most an hour) and never overlapping. Kinds are balanced across the fleet. The
    last `fault_free_devices` devices get no faults at all. Device `k` draws from its own
    generator, so its readings do not depend on how many other devices there are.
    """
    if devices < 1 or not 0 <= fault_free_devices <= devices:
        raise ValueError("need devices >= 1 and 0 <= fault_free_devices <= devices")
    if interval_s <= 0 or duration_s < interval_s:
        raise ValueError("need interval_s > 0 and duration_s >= interval_s")
    allowed = validate_kinds(kinds)
    warm = min(3600.0, 0.1 * duration_s) if warmup_s is None else warmup_s
    n = int(duration_s // interval_s)
    plan_rng = np.random.default_rng((seed, 0))
    faulty = devices - fault_free_devices
    expected = max(faults_per_device_day, 0.0) * duration_s / DAY_S
    counts = [math.floor(expected) + int(plan_rng.random() < expected % 1.0) for _ in range(faulty)]
    sequence = _kind_sequence(allowed, sum(counts), plan_rng) if allowed else []

    frames: list[pd.DataFrame] = []
    truth: list[Fault] = []
    ids: list[str] = []
    used = 0
    for index in range(devices):
        rng = np.random.default_rng((seed, 1, index))
        profile = make_profile(index, rng)
        ts = _times(start, interval_s, n, rng)
        v, i, t = (np.round(a, VALUE_DECIMALS) for a in normal_arrays(profile, ts, rng, daily_cycle))
        mine = sequence[used : used + counts[index]] if index < faulty else []
        used += len(mine)
        truth.extend(
            _inject(
                profile,
                ts,
                (v, i, t),
                mine,
                rng,
                interval_s=interval_s,
                warmup_s=warm,
                time_compression=time_compression,
            )
        )
        frames.append(_frame(profile.device_id, ts, v, i, t))
        ids.append(profile.device_id)
    readings = pd.concat(frames, ignore_index=True).sort_values(["device_id", "ts"], kind="stable", ignore_index=True)
    truth.sort(key=lambda f: (f.start, f.device_id))
    return Dataset(readings=readings, truth=truth, devices=ids, fault_free=ids[faulty:])


def _scenario(
    device_id: str,
    start: float,
    interval_s: float,
    history_s: float,
    noise_c: float,
    daily_amplitude_c: float,
    base_c: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if interval_s <= 0 or history_s < interval_s:
        raise ValueError("need interval_s > 0 and history_s >= interval_s")
    rng = np.random.default_rng((seed, 2))
    profile = DeviceProfile(
        device_id=device_id, temperature=base_c, noise_temperature=noise_c, cycle_temperature=daily_amplitude_c
    )
    ts = _times(start, interval_s, int(history_s // interval_s), rng)
    v, i, t = normal_arrays(profile, ts, rng, daily_cycle=True)
    return ts, v, i, t


def degradation_scenario(
    *,
    device_id: str,
    start: float,
    interval_s: float,
    history_s: float,
    slope_c_per_day: float,
    noise_c: float = NOISE_TEMPERATURE,
    limit_c: float = DEFAULT_LIMIT_C,
    base_c: float = 35.0,
    daily_amplitude_c: float = 3.0,
    seed: int = 0,
    onset_s: float = 0.0,
) -> tuple[pd.DataFrame, float]:
    """Readings of one degrading device over `history_s` from `start`, and its true failure time.

    The temperature's underlying trend is `base_c` until `start + onset_s`, then rises linearly by
    `slope_c_per_day`; the failure time is when that trend reaches `limit_c`. The daily cycle
    (± `daily_amplitude_c`) and noise (σ `noise_c`) ride on top. Readings past the failure time
    are included if `history_s` reaches beyond it (callers cut the history where they need).
    """
    if slope_c_per_day <= 0:
        raise ValueError("slope_c_per_day must be positive: a device that does not warm up never fails")
    if base_c >= limit_c:
        raise ValueError("base_c must be below limit_c")
    ts, v, i, t = _scenario(device_id, start, interval_s, history_s, noise_c, daily_amplitude_c, base_c, seed)
    onset = start + onset_s
    t = t + slope_c_per_day * np.maximum(ts - onset, 0.0) / DAY_S
    failure_at = onset + (limit_c - base_c) / slope_c_per_day * DAY_S
    return _frame(device_id, ts, v, i, t), float(failure_at)


def healthy_scenario(
    *,
    device_id: str,
    start: float,
    interval_s: float,
    history_s: float,
    noise_c: float = NOISE_TEMPERATURE,
    daily_amplitude_c: float = 3.0,
    seed: int = 0,
    base_c: float = 35.0,
) -> pd.DataFrame:
    """Readings of one healthy device (daily cycle and noise, no trend) over `history_s`."""
    ts, v, i, t = _scenario(device_id, start, interval_s, history_s, noise_c, daily_amplitude_c, base_c, seed)
    return _frame(device_id, ts, v, i, t)
