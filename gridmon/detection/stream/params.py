"""The detector's parameters: one configuration for every device and every data set.

Each value is a documented default a user would keep; nothing here depends on which data is
being scored. Durations are in seconds of device time, window lengths in readings: a
statistical window needs a number of readings to mean anything, whereas drift, seasons and
alarm budgets are about time. `docs/detection.md` says why each part exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from gridmon.domain.units import DAY_S


@dataclass(frozen=True)
class DetectorParams:
    """Tunables of the streaming detector (see the module docstring for units)."""

    tau_recent_s: float = 3600.0
    """Time constant of the *recent level* model: follows changes slower than about an hour."""
    tau_slow_s: float = 7 * DAY_S
    """Time constant of the seasonal model's level and of every residual scale."""
    season_days: int = 3
    """Previous days whose same-time-of-day value (median) is the seasonal expectation."""
    season_gain: float = 0.7
    """The seasonal model is used when its residuals are at most this fraction of the recent one's."""
    span: float = 16.0
    """Readings in the short windows (shift and spread scores, device shift energy)."""
    span_long: float = 64.0
    """Readings in the long shift window (slow, sustained deviations)."""
    close_span: float = 4.0
    """Readings in the smoothing of the residual that decides when an alarm clears."""
    alarms_per_day: float = 0.05
    """Alarm budget per device and day of normal operation: sets every threshold's tail probability."""
    band_p: float = 0.001
    """Tail probability of the expected band (where an alarm clears): 0.1 %, the share of a
    Gaussian residual beyond 3.29 standard deviations (the two-sided 99.9 % limits). The band is
    the value the metric's own fitted residual tail exceeds that rarely: ±3.29σ for a Gaussian
    metric, wider for a heavy-tailed one. (It was Shewhart's ±3σ, 0.27 %, until alarms were held
    while a condition stands at its peak: docs/detection.md, alarm discipline.)"""
    calibration_halflife_s: float = 60 * DAY_S
    """Half-life of the score histograms that thresholds are calibrated on."""
    tail_q: float = 0.1
    """Largest share of the history that the tail fit starts from (less when history is long)."""
    gamma_max: float = 0.9
    """Upper bound of the fitted tail shape (heavier tails are treated as this heavy)."""
    min_calibration: float = 200.0
    """Readings of normal history a score needs before it may raise an alarm."""
    off_readings: int = 3
    """Consecutive readings inside the band before an alarm clears (off-delay) ..."""
    off_delay_s: float = 900.0
    """... or fewer, when that many readings take longer than this (slow devices: one hourly
    reading back inside its band is evidence enough)."""
    accept_after_s: float = 3 * 3600.0
    """A condition standing longer than this is learnt as the new normal (the alarm then clears
    once the adapted model sees the signal inside its band)."""
    recent_peak_s: float = 0.0
    """Half-life of the recent-peak guard in seconds, at least (0: counted in readings only)."""
    recent_peak_readings: float = 64.0
    """Half-life of the recent-peak guard in readings: a new alarm needs more than what was just
    seen. The tail of an event fades with the score's window, so the guard forgets over the longest
    one (`span_long`), whatever the cadence."""
    alarm_learn_weight: float = 0.0
    """Weight with which readings in alarm enter the score histograms (0: they do not — a fault
    seen once must not hide the next one; a standing condition is learnt after `accept_after_s`)."""
    huber_clip: float = 3.0
    """Residuals beyond this many scales move levels and scales only this far."""
    scale_floor: float = 1e-3
    """Residual scale floor, as a share of the metric's mean absolute deviation (resolution guard)."""

    rate_halflife_s: float = 30 * DAY_S
    """Half-life of the device's measured rate of nuisance alarms (low and short episodes). When
    they come more often than the budget, every tail probability is divided by the excess, so a
    device whose normal life has frequent small excursions pages at about the budget; 0 turns
    this off."""
    rate_prior_s: float = 30 * DAY_S
    """Time at the budget's rate assumed before any reading: a few early alarms move nothing."""
    refit_phase: float = 0.0
    """Readings by which the periodic refits of every threshold (each 32 readings, the first when
    a score has `min_calibration` readings) are shifted, 0 to 31. Whether a developing fault beats
    a threshold fitted just before it or one refitted with its first readings depends on this
    timing; `gridmon eval … --phases N` reruns with N shifts to show how much of a figure owes to
    it. A deployment keeps 0."""

    repeat_readings: float = 16.0
    """A metric's alarm episode (alarms fewer than `span` readings apart are one) that cleared
    within this many readings of its first onset was a short event. A new event no larger, in the
    metric's units, than two earlier short events does not alarm (ISA-18.2's repeating alarms: a
    burst that recurs is part of the device's life, and its first two occurrences paged); 0 turns
    this off. Stuck runs always alarm."""

    on_delay_s: float = 15.0
    """On-delay (ISA-18.2): on a device that reports faster than this, a *low* alarm (every score
    beyond its threshold below twice it: the nuisance rate's severity) opens only when the next
    reading is still beyond a threshold or outside the band; a slower device's one reading spans
    the delay. One reading past a threshold on a fast sensor, back to normal at the next, is a
    glitch, not a condition. The waiting reading is not learnt (as one in alarm). 15 s is the
    on-delay alarm-management practice commonly gives flow and pressure alarms; 0 turns it off."""

    def as_array(self) -> np.ndarray:
        """The values in declaration order, as the compiled kernel reads them."""
        return np.array([float(getattr(self, f.name)) for f in fields(self)], dtype=np.float64)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


PARAM_NAMES = tuple(f.name for f in fields(DetectorParams))
