"""Temperature trend and time to the critical limit.

1. The 24 h load cycle is removed: an ordinary least-squares fit of a line plus `harmonics`
   sine/cosine pairs of one day gives the cycle, which is subtracted (fitting line and cycle
   together keeps a partial day from leaking into the slope).
2. Change of regime: if a broken line (one change of slope) explains the window clearly better
   than a straight one (BIC), only the data after the break describe the device now — a fault
   that began three days ago must not be averaged with the quiet week before it.
3. The Theil–Sen slope (scipy.stats.theilslopes: the median of all pairwise slopes) of what is
   left, with its confidence interval. That interval assumes independent residuals and a known
   cycle; neither holds, so its half-widths are widened by sqrt((1+ρ)/(1−ρ)) for a positive
   lag-1 autocorrelation ρ of the residuals (effective sample size) and by the square root of
   the slope's variance inflation from fitting the cycle alongside it.
4. The crossing of the limit: from the level at the segment's median time, t* = t_c + (L − z_c)/b;
   the interval takes the slope bounds (and the level's own uncertainty) to the same line.

Times are epoch seconds throughout; slopes are °C/day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from gridmon.domain.units import DAY_S

MAX_ONSET_CANDIDATES = 200
RECENT_S = 3 * 3600.0  # the "where is it now" level of the temperature path


@dataclass(frozen=True, slots=True)
class TrendFit:
    """A robust line through the de-cycled temperature."""

    slope: float
    slope_low: float
    slope_high: float
    t_center: float
    level_center: float
    level_se: float
    residual_sd: float
    autocorrelation: float
    n: int
    span_s: float
    t_last: float
    onset: float | None = None
    """Start of the current regime (epoch s) when a change of slope was found in the window."""
    cycle: tuple[float, ...] = ()
    """Daily cycle: sine, cosine coefficient of each harmonic (phase from `t_last`)."""
    recent_level: float = math.nan
    """Mean de-cycled temperature over the last `RECENT_S` of the window ..."""
    t_recent: float = math.nan
    """... and the mean time of those readings (epoch s)."""

    def level_at(self, t: float) -> float:
        """The trend's temperature at time t (epoch s)."""
        return self.level_center + self.slope * (t - self.t_center) / DAY_S

    def path(self, t: npt.ArrayLike, *, rising: bool) -> np.ndarray:
        """The expected temperature at times t (epoch s): where the de-cycled temperature was over
        the last hours, plus the daily cycle, plus the slope when the prediction stands behind it
        (`rising`: a crossing was dated). Without a dated trend a line extrapolated a day ahead
        does worse than no slope at all: weather and load move a temperature for days at a time."""
        t_arr = np.asarray(t, dtype=float)
        days = (t_arr - self.t_last) / DAY_S
        cycle = _cycle_columns(days, len(self.cycle) // 2) @ np.asarray(self.cycle) if self.cycle else 0.0
        trend = self.slope * (t_arr - self.t_recent) / DAY_S if rising else 0.0
        return np.asarray(self.recent_level + trend + cycle, dtype=float)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "slope_c_per_day": round(self.slope, 5),
            "slope_low": round(self.slope_low, 5),
            "slope_high": round(self.slope_high, 5),
            "level_now_c": round(self.level_at(self.t_last), 3),
            "residual_sd_c": round(self.residual_sd, 4),
            "autocorrelation": round(self.autocorrelation, 3),
            "buckets": self.n,
            "span_hours": round(self.span_s / 3600.0, 2),
            "onset": self.onset,
            "recent_level_c": round(self.recent_level, 3),
            "cycle_amplitude_c": round(_amplitude(self.cycle), 3),
        }


@dataclass(frozen=True, slots=True)
class Crossing:
    """When the trend reaches the limit: an estimate and an interval (epoch s)."""

    when: float
    low: float
    high: float
    already_above: bool = False


def _amplitude(cycle: tuple[float, ...]) -> float:
    """Sum of the harmonics' amplitudes (an upper bound of the cycle's half range)."""
    pairs = np.reshape(np.asarray(cycle, dtype=float), (-1, 2)) if cycle else np.zeros((0, 2))
    return float(np.hypot(pairs[:, 0], pairs[:, 1]).sum())


def _cycle_columns(t_days: np.ndarray, harmonics: int) -> np.ndarray:
    cols = []
    for k in range(1, harmonics + 1):
        cols.append(np.sin(2 * math.pi * k * t_days))
        cols.append(np.cos(2 * math.pi * k * t_days))
    return np.column_stack(cols) if cols else np.zeros((t_days.size, 0))


def _design(t_days: np.ndarray, cycle: np.ndarray, onset_days: float | None) -> np.ndarray:
    cols = [np.ones_like(t_days), t_days]
    if onset_days is not None:
        cols.append(np.maximum(t_days - onset_days, 0.0))
    return np.column_stack([*cols, cycle])


def _sse(design: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return float(resid @ resid), coef


def _lag1(residuals: np.ndarray) -> float:
    if residuals.size < 3:
        return 0.0
    r = residuals - residuals.mean()
    denom = float((r * r).sum())
    return float((r[1:] * r[:-1]).sum() / denom) if denom > 0 else 0.0


def _widening(rho: float) -> float:
    """sqrt((1+ρ)/(1−ρ)): how much dependent residuals widen an interval (ρ capped at 0.9)."""
    rho_c = min(max(rho, 0.0), 0.9)
    return math.sqrt((1 + rho_c) / (1 - rho_c))


def find_onset(t_days: np.ndarray, y: np.ndarray, cycle: np.ndarray, *, min_segment_days: float) -> float | None:
    """The time (days) where the trend changes slope, if a broken line explains y clearly better.

    Candidates leave at least `min_segment_days` after the break and half of that before it.
    The break is kept when the BIC of the broken line (two more parameters: the time and the
    change of slope) beats the straight line's, with the sample size taken as the effective
    number of independent residuals of the broken fit.
    """
    lo, hi = t_days[0] + min_segment_days / 2, t_days[-1] - min_segment_days
    candidates = t_days[(t_days >= lo) & (t_days <= hi)]
    if candidates.size == 0:
        return None
    # a few hundred candidates place the break to within a bucket or two; more buys nothing
    candidates = candidates[:: max(1, candidates.size // MAX_ONSET_CANDIDATES)]
    sse0, _ = _sse(_design(t_days, cycle, None), y)
    best_sse, best_tau = math.inf, None
    for tau in candidates:
        sse, _ = _sse(_design(t_days, cycle, float(tau)), y)
        if sse < best_sse:
            best_sse, best_tau = sse, float(tau)
    if best_tau is None or best_sse <= 0 or sse0 <= best_sse:
        return None
    _, coef = _sse(_design(t_days, cycle, best_tau), y)
    resid = y - _design(t_days, cycle, best_tau) @ coef
    widen = _widening(_lag1(resid))
    n_eff = y.size / (widen * widen)
    delta_bic = n_eff * math.log(sse0 / best_sse) - 2 * math.log(n_eff)
    return best_tau if delta_bic > 0 else None


def _slope_vif(t_days: np.ndarray, cycle: np.ndarray) -> float:
    """Variance inflation of the slope from fitting the daily cycle alongside it (≈1 over whole days)."""
    design = np.column_stack([np.ones_like(t_days), t_days, cycle])
    gram = design.T @ design
    try:
        inv = np.linalg.inv(gram)
    except np.linalg.LinAlgError:
        return 1.0
    spread = float(((t_days - t_days.mean()) ** 2).sum())
    return max(1.0, float(inv[1, 1]) * spread) if spread > 0 else 1.0


def fit_trend(
    t: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    harmonics: int,
    confidence: float,
    detect_onset: bool = True,
    min_segment_s: float = DAY_S,
) -> TrendFit | None:
    """Theil–Sen trend of y(t) after removing the daily cycle; None with too few points.

    With `detect_onset`, a clear change of slope inside the window (a fault starting, a repair)
    restricts the line to the data after it: the forecast follows the current regime.
    """
    t_arr = np.asarray(t, dtype=float)
    y_arr = np.asarray(y, dtype=float)
    ok = np.isfinite(t_arr) & np.isfinite(y_arr)
    t_arr, y_arr = t_arr[ok], y_arr[ok]
    order = np.argsort(t_arr, kind="stable")
    t_arr, y_arr = t_arr[order], y_arr[order]
    if t_arr.size < 3 + 2 * harmonics or t_arr[-1] <= t_arr[0]:
        return None
    t_days = (t_arr - t_arr[-1]) / DAY_S
    cycle = _cycle_columns(t_days, harmonics)
    onset = find_onset(t_days, y_arr, cycle, min_segment_days=min_segment_s / DAY_S) if detect_onset else None
    design = _design(t_days, cycle, onset)
    _, coef = _sse(design, y_arr)
    z = y_arr - cycle @ coef[design.shape[1] - cycle.shape[1] :]
    seg = t_days >= onset if onset is not None else np.ones(t_days.size, dtype=bool)
    ts_seg, td_seg, z_seg = t_arr[seg], t_days[seg], z[seg]
    res = stats.theilslopes(z_seg, td_seg, alpha=confidence)
    slope = float(res.slope)
    t_center = float(np.median(ts_seg))
    c_days = (t_center - t_arr[-1]) / DAY_S
    level_center = float(np.median(z_seg - slope * (td_seg - c_days)))
    residuals = z_seg - (level_center + slope * (td_seg - c_days))
    rho = _lag1(residuals)
    widen = _widening(rho) * math.sqrt(_slope_vif(td_seg, cycle[seg]))
    mad_sd = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    # standard error of a median ≈ 1.2533 σ/√n, widened like the slope
    level_se = 1.2533 * mad_sd / math.sqrt(ts_seg.size) * widen
    recent = td_seg >= -RECENT_S / DAY_S
    n_cycle = cycle.shape[1]
    return TrendFit(
        cycle=tuple(float(c) for c in coef[design.shape[1] - n_cycle :]) if n_cycle else (),
        recent_level=float(np.mean(z_seg[recent])),
        t_recent=float(np.mean(ts_seg[recent])),
        slope=slope,
        slope_low=slope - widen * (slope - float(res.low_slope)),
        slope_high=slope + widen * (float(res.high_slope) - slope),
        t_center=t_center,
        level_center=level_center,
        level_se=level_se,
        residual_sd=mad_sd,
        autocorrelation=rho,
        n=int(ts_seg.size),
        span_s=float(ts_seg[-1] - ts_seg[0]),
        t_last=float(t_arr[-1]),
        onset=float(t_arr[-1] + onset * DAY_S) if onset is not None else None,
    )


def time_to_limit(
    fit: TrendFit,
    limit_c: float,
    *,
    now: float,
    confidence: float,
    decision_confidence: float,
    min_slope_c_per_day: float,
    horizon_days: float,
    extrapolation_factor: float = math.inf,
) -> tuple[Crossing | None, str]:
    """When the trend reaches `limit_c`, or None with the reason.

    `now` is the time of the current (newest) reading. A date is a claim that the limit is
    reached within the horizon, so it is made only when even the late end of the crossing at
    `decision_confidence` lies within `horizon_days` (stricter than the interval's `confidence`:
    the task runs every few minutes, and a healthy device must not collect a date by the odd
    1-in-20 chance), and only when that late end is within `extrapolation_factor` times the span
    of data the line was fitted on. Reasons: at_limit, flat_or_falling (slope below the floor),
    not_significant (slope not above zero at the decision level), beyond_horizon,
    beyond_evidence, rising (dated).
    """
    level_now = fit.level_at(now)
    if level_now >= limit_c:
        return Crossing(now, now, now, already_above=True), "at_limit"
    if fit.slope < min_slope_c_per_day:
        return None, "flat_or_falling"
    k_interval = float(stats.norm.ppf(0.5 + confidence / 2))
    k_decision = float(stats.norm.ppf(0.5 + decision_confidence / 2))
    slope_floor = fit.slope - (fit.slope - fit.slope_low) * k_decision / k_interval
    if slope_floor <= 0:
        return None, "not_significant"
    distance = limit_c - fit.level_center
    latest = fit.t_center + (distance + k_decision * fit.level_se) / slope_floor * DAY_S
    if (latest - now) / DAY_S > horizon_days:
        return None, "beyond_horizon"
    if latest - now > extrapolation_factor * fit.span_s:
        # A line fitted on S days says little about what happens after a few S more: weather
        # and load swing a temperature for days at a time (a real transformer's spring warming
        # extrapolated for weeks crosses any limit).
        return None, "beyond_evidence"
    when = fit.t_center + distance / fit.slope * DAY_S
    early = fit.t_center + max(distance - k_interval * fit.level_se, 0.0) / fit.slope_high * DAY_S
    late = fit.t_center + (distance + k_interval * fit.level_se) / fit.slope_low * DAY_S
    return Crossing(when, max(early, now), max(late, now)), "rising"
