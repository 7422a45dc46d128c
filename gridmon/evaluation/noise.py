"""`gridmon eval noise`: how often a new device pages when nothing is wrong with it.

Every alarm on a fault-free series is a false page, so generated noise without any fault is
the plainest test of the alarm budget (`DetectorParams.alarms_per_day`: 0.05 per device-day unless
`--budget` or `GRIDMON_ALARMS_PER_DEVICE_DAY` says otherwise).
For each kind of noise, `devices` new devices each report `metrics` independent metrics of it
(default one) every `interval_s` seconds for `days` days; each series goes through the evaluation adapter
(`detect_series`, no training rows: a new device in the live system, where the minimum
history `min_calibration` is all that keeps it quiet at first, and no safety limits: the
values are not grid units). Per kind:

- `onsets_per_device_day`: alarm onsets per device-day, over the whole span, over the first
  day only (`first_day`) and after it (`later`);
- `times_budget`: the whole-span rate over the budget;
- `time_in_alarm_pct`: share of readings flagged.

Kinds: Gaussian; Student-t with 3 degrees of freedom and Laplace (heavy tails: a sensor with
occasional glitches); AR(1) with φ = 0.9 (smooth, correlated noise); Gaussian quantised to half
its standard deviation (a coarse ADC). The null and flag-everything rows cover as many devices
and days (they do not look at the values). Fixed seed: the same command gives the same figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from gridmon.domain.units import DAY_S
from gridmon.evaluation.adapter import Verdict, detect_series, detector_params, everything_verdict, null_verdict
from gridmon.evaluation.nab_score import onsets

START_TS = 1.7e9
LEVEL = 50.0


def _ar1(rng: np.random.Generator, n: int) -> np.ndarray:
    """x[i] = 0.9·x[i-1] + e[i], e standard normal."""
    return np.asarray(lfilter([1.0], [1.0, -0.9], rng.normal(0.0, 1.0, n)), dtype=float)


KINDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "gaussian": lambda rng, n: rng.normal(0.0, 1.0, n),
    "student_t3": lambda rng, n: rng.standard_t(3, n),
    "laplace": lambda rng, n: rng.laplace(0.0, 1.0, n),
    "ar1": _ar1,
    "quantised": lambda rng, n: np.round(rng.normal(0.0, 1.0, n) * 2.0) / 2.0,
}


@dataclass(frozen=True)
class NoiseSetup:
    """What `evaluate_noise` generates."""

    devices: int = 40
    days: float = 3.0
    interval_s: float = 10.0
    seed: int = 0
    metrics: int = 1

    def readings(self) -> int:
        return round(self.days * DAY_S / self.interval_s)

    def check(self) -> None:
        if self.devices < 1:
            raise ValueError(f"devices must be at least 1, got {self.devices}")
        if self.metrics < 1:
            raise ValueError(f"metrics must be at least 1, got {self.metrics}")
        if self.interval_s <= 0:
            raise ValueError(f"interval must be positive, got {self.interval_s} s")
        if self.readings() < 2:
            raise ValueError(f"{self.days} days at {self.interval_s} s is fewer than 2 readings")


def _series(values: list[np.ndarray], interval_s: float) -> pd.DataFrame:
    """One device: the first metric is a temperature, any others `metric2`, `metric3`, …"""
    ts = START_TS + interval_s * np.arange(values[0].size)
    columns = {"temperature" if j == 0 else f"metric{j + 1}": LEVEL + v for j, v in enumerate(values)}
    return pd.DataFrame({"ts": ts, **columns})


def _row(verdicts: list[Verdict], setup: NoiseSetup) -> dict[str, Any]:
    """Rates of one detector over the devices of one kind."""
    n = setup.readings()
    day_end = min(n, round(DAY_S / setup.interval_s))
    days = n * setup.interval_s / DAY_S
    first = later = flagged = 0
    for verdict in verdicts:
        starts = np.asarray(onsets(verdict.flags, 0))
        early = int(np.count_nonzero(starts < day_end))
        first += early
        later += starts.size - early
        flagged += int(verdict.flags.sum())
    devices = len(verdicts)
    first_days = devices * day_end * setup.interval_s / DAY_S
    later_days = devices * days - first_days
    total = (first + later) / (devices * days)
    return {
        "onsets_per_device_day": total,
        "first_day": first / first_days,
        "later": later / later_days if later_days > 0 else None,
        "times_budget": total / detector_params().alarms_per_day,
        "time_in_alarm_pct": 100.0 * flagged / (devices * n),
        "onsets": first + later,
        "device_days": devices * days,
    }


def evaluate_noise(setup: NoiseSetup) -> dict[str, Any]:
    """The report of `gridmon eval noise` (module docstring)."""
    setup.check()
    rng = np.random.default_rng(setup.seed)
    n = setup.readings()
    rows: dict[str, Any] = {}
    for kind, generate in KINDS.items():
        series = [
            _series([generate(rng, n) for _ in range(setup.metrics)], setup.interval_s) for _ in range(setup.devices)
        ]
        rows[kind] = _row([detect_series(frame, 0, safety=False) for frame in series], setup)
    rows["null"] = _row([null_verdict(n)] * setup.devices, setup)
    rows["flag_everything"] = _row([everything_verdict(n, 0)] * setup.devices, setup)
    return {
        "rows": rows,
        "budget_per_device_day": detector_params().alarms_per_day,
        "setup": asdict(setup),
    }
