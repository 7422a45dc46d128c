"""The normal behaviour of a simulated sensor: nominal values, daily load cycle and noise.

The original design's sensors report 230 V ± 2, 4 A ± 0.5 and 35 °C ± 3. Here:
- voltage and current noise is Gaussian with σ equal to the original's ± value (2 V, 0.5 A);
- temperature is a slow quantity whose ±3 °C in the original is mostly the daily swing, so it
  gets the swing explicitly (± 3 °C, lagging the load by two hours) plus σ = 1.5 °C noise;
- a daily load cycle (peak at 18:00 UTC, trough at 06:00) moves current ± 0.8 A, temperature
  ± 3 °C (lagged) and voltage ∓ 1 V (a loaded feeder sags slightly) — detectors have to follow it
  rather than alarm on it;
- every device differs a little from nominal (σ 1 V, 0.3 A, 2 °C, and ± 30 min of phase), so a
  detector must learn per-device baselines.

Two forms of the same model: `normal_arrays` (vectorised, for datasets) and
`DeviceProfile.normal` (one reading at a time, for the live simulator).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from gridmon.domain.units import DAY_S

NOMINAL_VOLTAGE = 230.0
NOMINAL_CURRENT = 4.0
NOMINAL_TEMPERATURE = 35.0

NOISE_VOLTAGE = 2.0
NOISE_CURRENT = 0.5
NOISE_TEMPERATURE = 1.5

CYCLE_VOLTAGE = 1.0  # amplitude, inverse to the load
CYCLE_CURRENT = 0.8
CYCLE_TEMPERATURE = 3.0
TEMPERATURE_LAG_S = 2 * 3600.0  # the transformer warms up after the load, not with it
LOAD_PEAK_S = 18 * 3600.0  # seconds after midnight UTC at which the load peaks

VALUE_DECIMALS = 3  # what goes on the wire; datasets are rounded the same way


def device_name(index: int) -> str:
    """Device ids as in the original design: `sensor_0`, `sensor_1`, …"""
    return f"sensor_{index}"


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """The fixed character of one sensor."""

    device_id: str
    voltage: float = NOMINAL_VOLTAGE
    current: float = NOMINAL_CURRENT
    temperature: float = NOMINAL_TEMPERATURE
    phase_s: float = 0.0
    noise_voltage: float = NOISE_VOLTAGE
    noise_current: float = NOISE_CURRENT
    noise_temperature: float = NOISE_TEMPERATURE
    cycle_temperature: float = CYCLE_TEMPERATURE

    def normal(self, ts: float, rnd: random.Random, daily_cycle: bool) -> tuple[float, float, float]:
        """One healthy reading at `ts` (scalar twin of `normal_arrays`)."""
        load = load_cycle_scalar(ts + self.phase_s) if daily_cycle else 0.0
        lagged = load_cycle_scalar(ts + self.phase_s - TEMPERATURE_LAG_S) if daily_cycle else 0.0
        voltage = self.voltage - CYCLE_VOLTAGE * load + rnd.gauss(0.0, self.noise_voltage)
        current = self.current + CYCLE_CURRENT * load + rnd.gauss(0.0, self.noise_current)
        temperature = self.temperature + self.cycle_temperature * lagged + rnd.gauss(0.0, self.noise_temperature)
        return voltage, max(current, 0.0), temperature


def make_profile(index: int, rng: np.random.Generator) -> DeviceProfile:
    """Sensor number `index`, with small individual offsets from nominal drawn from `rng`."""
    return DeviceProfile(
        device_id=device_name(index),
        voltage=float(NOMINAL_VOLTAGE + rng.normal(0.0, 1.0)),
        current=float(NOMINAL_CURRENT + rng.normal(0.0, 0.3)),
        temperature=float(NOMINAL_TEMPERATURE + rng.normal(0.0, 2.0)),
        phase_s=float(rng.uniform(-1800.0, 1800.0)),
    )


def load_cycle(ts: np.ndarray) -> np.ndarray:
    """Relative load in [-1, 1] at epoch seconds `ts`: 1 at the daily peak, -1 at the trough."""
    return np.cos(2.0 * np.pi * (ts - LOAD_PEAK_S) / DAY_S)


def load_cycle_scalar(ts: float) -> float:
    """`load_cycle` for one time (math, not numpy: the live path calls it per reading)."""
    return math.cos(2.0 * math.pi * (ts - LOAD_PEAK_S) / DAY_S)


def normal_arrays(
    profile: DeviceProfile, ts: np.ndarray, rng: np.random.Generator, daily_cycle: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Healthy voltage, current and temperature of `profile` at the times `ts`."""
    n = len(ts)
    if daily_cycle:
        load = load_cycle(ts + profile.phase_s)
        lagged = load_cycle(ts + profile.phase_s - TEMPERATURE_LAG_S)
    else:
        load = lagged = np.zeros(n)
    voltage = profile.voltage - CYCLE_VOLTAGE * load + rng.normal(0.0, profile.noise_voltage, n)
    current = profile.current + CYCLE_CURRENT * load + rng.normal(0.0, profile.noise_current, n)
    temperature = (
        profile.temperature + profile.cycle_temperature * lagged + rng.normal(0.0, profile.noise_temperature, n)
    )
    return voltage, np.maximum(current, 0.0), temperature
