"""Insulation aging per IEEE C57.91 (thermally upgraded paper, 110 °C reference hot spot).

The aging acceleration factor is F_AA = exp(15000/383 − 15000/(θ_H + 273)): 1 at a 110 °C hot
spot, doubling roughly every 6–7 °C above it. Loss of life over a span is ∫ F_AA dt, in hours of
normal life, against a normal insulation life of 180,000 h. The hot spot θ_H is not measured: it
is the sensor temperature plus a configurable rise (`MaintenanceConfig.hotspot_rise_c`), an
assumption spelled out in docs/maintenance.md.

The SQL bucket query (`gridmon.storage.maintenance_reads`) evaluates the same expression in
PostgreSQL with the same constants (`gridmon.domain.maintenance`); a test holds the two to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridmon.domain.maintenance import AGING_A, AGING_B, KELVIN

NORMAL_LIFE_H = 180_000.0


def aging_factor(hotspot_c: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """F_AA for hot-spot temperatures in °C (element-wise)."""
    theta = np.asarray(hotspot_c, dtype=float)
    return np.exp(AGING_A - AGING_B / (theta + KELVIN))


def aging_factor_from_sensor(sensor_c: npt.ArrayLike, rise_c: float) -> npt.NDArray[np.float64]:
    """F_AA with the hot spot estimated as sensor temperature + `rise_c`."""
    return aging_factor(np.asarray(sensor_c, dtype=float) + rise_c)


@dataclass(frozen=True, slots=True)
class AgingSummary:
    """Insulation aging over the observed part of a window."""

    observed_hours: float
    loss_of_life_hours: float
    equivalent_factor: float
    """F_EQA: the time-weighted mean F_AA; 1 = aging at the rate of normal life."""

    @property
    def loss_of_life_pct(self) -> float:
        """Loss of life over the window as % of the 180,000 h normal life."""
        return 100.0 * self.loss_of_life_hours / NORMAL_LIFE_H

    @property
    def pct_per_year(self) -> float:
        """% of normal life used per year if the window's aging rate continued."""
        return 100.0 * self.equivalent_factor * 8760.0 / NORMAL_LIFE_H

    def as_dict(self) -> dict[str, float]:
        return {
            "observed_hours": round(self.observed_hours, 3),
            "loss_of_life_hours": round(self.loss_of_life_hours, 6),
            "loss_of_life_pct": round(self.loss_of_life_pct, 8),
            "equivalent_aging_factor": round(self.equivalent_factor, 6),
            "life_pct_per_year": round(self.pct_per_year, 6),
        }


def summarise_aging(mean_factor: npt.ArrayLike, covered_s: npt.ArrayLike) -> AgingSummary:
    """Loss of life from per-bucket mean F_AA and the seconds each bucket covers."""
    factors = np.asarray(mean_factor, dtype=float)
    hours = np.asarray(covered_s, dtype=float) / 3600.0
    ok = np.isfinite(factors) & np.isfinite(hours) & (hours > 0)
    observed = float(hours[ok].sum())
    loss = float((factors[ok] * hours[ok]).sum())
    return AgingSummary(observed, loss, loss / observed if observed > 0 else 0.0)
