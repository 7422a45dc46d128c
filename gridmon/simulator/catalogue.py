"""The fault catalogue: which faults exist, how long and how strong they are, what they do.

Shared by the live simulator (one reading at a time) and the dataset generator (vectorised), so
the faults scored by `gridmon eval` are the faults the live system sees.

A fault is planned once (`plan_fault`: duration, magnitude, drawn from a seeded generator) and
then applied to the healthy readings it covers (`apply_fault`). Most spikes, sags, surges and
overheating episodes cross the safe operating limits (voltage 200–250 V, current 0–10 A,
temperature 0–80 °C); a share of them (`SUBTLE_SHARE`) is subtle and kept inside those limits,
yet still several σ away from the device's normal — only a statistical detector can catch them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridmon.domain.units import DAY_S
from gridmon.simulator.device import DeviceProfile

FAULT_KINDS: tuple[str, ...] = (
    "voltage_spike",
    "voltage_sag",
    "current_surge",
    "overheating",
    "stuck_sensor",
    "degradation",
)

# Relative frequency of each kind in the live simulator: short electrical events are common,
# long thermal ones rarer.
KIND_WEIGHTS: dict[str, float] = {
    "voltage_spike": 3.0,
    "voltage_sag": 2.0,
    "current_surge": 2.0,
    "overheating": 1.0,
    "stuck_sensor": 1.0,
    "degradation": 0.5,
}

SAFE_LIMITS: dict[str, tuple[float, float]] = {
    "voltage": (200.0, 250.0),
    "current": (0.0, 10.0),
    "temperature": (0.0, 80.0),
}
SUBTLE_SHARE = 0.3
SUBTLE_MARGIN = 0.5  # subtle faults stay this far inside the safe limits
STUCK_MIN_READINGS = 30  # shorter flat lines are indistinguishable from a quiet sensor
DEFAULT_LIMIT_C = 80.0
DEFAULT_TIME_COMPRESSION = 1440.0  # live default: one simulated day of degradation per minute


@dataclass(frozen=True)
class Fault:
    """Ground truth of one injected fault. Times are UTC epoch seconds.

    `start`/`end` are the timestamps of the first and last affected reading; `failure_at` (for
    `degradation`) is when the underlying temperature trend reaches the critical limit.
    """

    device_id: str
    kind: str
    start: float
    end: float
    failure_at: float | None = None
    params: dict[str, float] = field(default_factory=dict)

    def __hash__(self) -> int:  # params is a dict: hash the identifying fields only
        return hash((self.device_id, self.kind, self.start, self.end, self.failure_at))

    def to_json(self) -> str:
        """One JSONL line (without the newline)."""
        return json.dumps(
            {
                "device_id": self.device_id,
                "kind": self.kind,
                "start": self.start,
                "end": self.end,
                "failure_at": self.failure_at,
                "params": self.params,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str | bytes) -> Fault:
        """Parse a line written by `to_json` (unknown keys are ignored)."""
        doc: dict[str, Any] = json.loads(line)
        failure_at = doc.get("failure_at")
        return cls(
            device_id=str(doc["device_id"]),
            kind=str(doc["kind"]),
            start=float(doc["start"]),
            end=float(doc["end"]),
            failure_at=None if failure_at is None else float(failure_at),
            params={str(k): float(v) for k, v in (doc.get("params") or {}).items()},
        )


@dataclass(frozen=True)
class FaultPlan:
    """A fault decided but not yet placed: it covers the readings from its first one while
    fewer than `min_readings` were affected or less than `duration_s` has passed."""

    kind: str
    duration_s: float
    min_readings: int
    params: dict[str, float]

    def covers(self, elapsed_s: float, affected_so_far: int) -> bool:
        """Whether the next reading, `elapsed_s` after the first affected one, is still affected."""
        return affected_so_far < self.min_readings or elapsed_s <= self.duration_s

    @property
    def failure_offset_s(self) -> float | None:
        """For degradation: seconds from the first affected reading to failure."""
        return self.duration_s if self.kind == "degradation" else None


def validate_kinds(kinds: Any) -> tuple[str, ...]:
    """The requested kinds (all when None), refusing unknown names."""
    if kinds is None:
        return FAULT_KINDS
    chosen = tuple(dict.fromkeys(str(k).strip() for k in kinds if str(k).strip()))
    unknown = [k for k in chosen if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}")
    return chosen


def choose_kind(kinds: tuple[str, ...], rng: np.random.Generator) -> str:
    """Draw a kind by `KIND_WEIGHTS` among the allowed `kinds`."""
    weights = np.array([KIND_WEIGHTS[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def plan_fault(
    kind: str,
    rng: np.random.Generator,
    *,
    profile: DeviceProfile,
    time_compression: float = DEFAULT_TIME_COMPRESSION,
    limit_c: float = DEFAULT_LIMIT_C,
) -> FaultPlan:
    """Draw duration and magnitude of one fault of `kind` for the device `profile`."""
    subtle = bool(rng.random() < SUBTLE_SHARE)
    flag = 1.0 if subtle else 0.0
    if kind == "voltage_spike":
        delta = rng.uniform(12.0, 17.0) if subtle else rng.uniform(25.0, 50.0)
        return FaultPlan(kind, 0.0, int(rng.integers(1, 6)), {"delta_v": float(delta), "subtle": flag})
    if kind == "voltage_sag":
        delta = -(rng.uniform(12.0, 18.0) if subtle else rng.uniform(35.0, 60.0))
        return FaultPlan(kind, float(rng.uniform(10.0, 60.0)), 1, {"delta_v": float(delta), "subtle": flag})
    if kind == "current_surge":
        delta = rng.uniform(2.5, 4.5) if subtle else rng.uniform(7.0, 14.0)
        return FaultPlan(kind, float(rng.uniform(5.0, 30.0)), 1, {"delta_i": float(delta), "subtle": flag})
    if kind == "overheating":
        delta = rng.uniform(18.0, 30.0) if subtle else rng.uniform(85.0, 105.0) - profile.temperature
        return FaultPlan(kind, float(rng.uniform(60.0, 600.0)), 1, {"delta_t": float(delta), "subtle": flag})
    if kind == "stuck_sensor":
        return FaultPlan(kind, float(rng.uniform(60.0, 300.0)), STUCK_MIN_READINGS, {})
    if kind == "degradation":
        if time_compression <= 0:
            raise ValueError("time_compression must be positive")
        # A realistic failing transformer warms by a few to tens of °C per day; the simulator
        # compresses that into minutes (live) or hours (datasets).
        slope = float(rng.uniform(4.0, 20.0))
        rise = max(limit_c - profile.temperature, 1.0)
        duration = rise / slope * DAY_S / time_compression
        params = {"slope_c_per_day": slope, "time_compression": time_compression, "limit_c": limit_c, "rise_c": rise}
        return FaultPlan(kind, float(duration), 1, params)
    raise ValueError(f"unknown fault kind {kind!r}")


def _envelope(progress: np.ndarray) -> np.ndarray:
    """Overheating shape: a ramp over the first fifth, a plateau, a cool-down over the last fifth."""
    return np.clip(np.minimum(progress + 0.05, 1.05 - progress) / 0.25, 0.0, 1.0)


def apply_fault(
    kind: str,
    params: Mapping[str, float],
    progress: np.ndarray,
    voltage: np.ndarray,
    current: np.ndarray,
    temperature: np.ndarray,
    frozen: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faulty values of the readings a fault covers, from their healthy values.

    `progress` is each reading's position in the fault's planned duration (0 at the first
    affected reading, 1 at the planned end); `frozen` is the last reading before the fault
    (what a stuck sensor keeps repeating).
    """
    subtle = params.get("subtle", 0.0) >= 0.5
    v_lo, v_hi = SAFE_LIMITS["voltage"]
    if kind in ("voltage_spike", "voltage_sag"):
        voltage = voltage + params["delta_v"]
        if kind == "voltage_sag":
            # Constant-power loads draw more current when the voltage sags.
            current = current * (voltage - params["delta_v"]) / np.maximum(voltage, 1.0)
        if subtle:
            voltage = np.clip(voltage, v_lo + SUBTLE_MARGIN, v_hi - SUBTLE_MARGIN)
    elif kind == "current_surge":
        current = current + params["delta_i"]
        voltage = voltage - 0.4 * params["delta_i"]  # drop across the feeder impedance
        if subtle:
            current = np.minimum(current, SAFE_LIMITS["current"][1] - SUBTLE_MARGIN)
    elif kind == "overheating":
        temperature = temperature + params["delta_t"] * _envelope(progress)
        if subtle:
            temperature = np.minimum(temperature, SAFE_LIMITS["temperature"][1] - SUBTLE_MARGIN)
    elif kind == "stuck_sensor":
        if frozen is None:
            raise ValueError("a stuck sensor needs the reading it is stuck at")
        shape = np.shape(progress)
        voltage = np.full(shape, frozen[0])
        current = np.full(shape, frozen[1])
        temperature = np.full(shape, frozen[2])
    elif kind == "degradation":
        temperature = temperature + params["rise_c"] * np.clip(progress, 0.0, 1.0)
    else:
        raise ValueError(f"unknown fault kind {kind!r}")
    return voltage, current, temperature
