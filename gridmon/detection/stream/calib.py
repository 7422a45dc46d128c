"""Self-calibrated thresholds: a decayed histogram of a score and a tail fit on it.

Every score of every device gets its own threshold, learnt from that device's own normal
history, for a tail probability set by the alarm budget (`DetectorParams.alarms_per_day`):
a device reporting every second needs a far rarer value to alarm than one reporting hourly,
so both page about as often.

- The histogram holds the *squared* score on a log2 grid (`NB` bins from 2^LO to 2^HI). In
  squared space a Gaussian score has an exponential tail, which the fit below extrapolates
  exactly; heavier tails get a positive shape.
- Counts decay (half-life in device time) by weighting new entries more (`weight` grows),
  so an update touches one bin.
- `thresholds(h, total, weight, q, p_on, p_band, gamma_max, top)`: the values exceeded with
  probabilities `p_on` (a score's threshold) and `p_band` (its band), from one fit. Above the (1 − q)
  quantile the tail is a generalised Pareto distribution fitted by probability-weighted moments
  (Hosking & Wallis 1987), shape clipped to [0, gamma_max]; below it, the empirical quantile.
  When the budget asks for a rarer value than the history can show (p · total < 1), the result
  is never below `top`, the largest value seen in normal operation (readings in alarm, which
  enter the histogram with a small weight, do not raise it): nothing already seen in normal
  operation alarms, and a fault seen once does not hide the next one.
  `weight` is the weight a new entry gets now, so `total / weight` is the decayed count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

NB = 80
LO = -10.0
HI = 20.0
DL = (HI - LO) / NB


@nb.njit(cache=True, inline="always")
def hbin(x2: float) -> int:
    """Bin of a squared score."""
    if not x2 > 0.0:
        return 0
    v = (math.log2(x2) - LO) / DL
    if v < 0.0:
        return 0
    if v >= NB:
        return NB - 1
    return int(v)


@nb.njit(cache=True, inline="always")
def edge(i: int) -> float:
    return 2.0 ** (LO + i * DL)


@nb.njit(cache=True, inline="always")
def _quantile(h: np.ndarray, total: float, p: float) -> float:
    """The empirical value exceeded with probability `p` (interpolated within its bin)."""
    acc = 0.0
    for i in range(NB - 1, -1, -1):
        acc += h[i]
        if acc >= p * total:
            frac = (acc - p * total) / h[i] if h[i] > 0.0 else 0.0
            return 2.0 ** (LO + (i + frac) * DL)
    return edge(0)


@nb.njit(cache=True, inline="always")
def _beyond(
    total: float, weight: float, p: float, t: float, st: float, a0: float, g: float, sig: float, top: float
) -> float:
    """The value exceeded with probability `p` from the tail fit above `t` (the share `st` of the
    history beyond it; mean excess `a0`, shape `g`, scale `sig`)."""
    if a0 <= 0.0:
        v = t * 1.01
    else:
        ratio = st / p
        v = t + sig * math.log(ratio) if g < 1e-6 else t + sig / g * (ratio**g - 1.0)
    if p * total / weight < 1.0:  # total / weight: the decayed count of readings behind h
        # above the top of the bin the largest normal value fell in (as coarse as the histogram,
        # so a quantised score that repeats its largest value does not alarm on it)
        v = max(v, edge(hbin(top) + 1))
    return v


@nb.njit(cache=True)
def thresholds(
    h: np.ndarray, total: float, weight: float, q: float, p_on: float, p_band: float, gamma_max: float, top: float
) -> tuple[float, float]:
    """Squared-score values exceeded with probabilities `p_on` and `p_band` (see the module
    docstring): a score's threshold and its band, from one tail fit."""
    if total <= 0.0:
        return np.inf, np.inf
    acc = 0.0
    tb = 0
    for i in range(NB - 1, -1, -1):
        acc += h[i]
        if acc >= q * total:
            tb = i
            break
    t = edge(tb)
    st = acc / total
    a0 = g = sig = 0.0
    if p_on < st or p_band < st:
        # the generalised Pareto tail above t, fitted once for both probabilities
        a1 = 0.0
        above = 0.0
        for i in range(NB - 1, tb - 1, -1):
            if h[i] <= 0.0:
                continue
            y = max(2.0 ** (LO + (i + 0.5) * DL) - t, 0.0)
            s_mid = (above + 0.5 * h[i]) / acc
            a0 += h[i] * y
            a1 += h[i] * y * s_mid
            above += h[i]
        a0 /= acc
        a1 /= acc
        if a0 > 0.0:
            den = a0 - 2.0 * a1
            g = gamma_max if den <= 1e-12 * a0 else 2.0 - a0 / den
            g = min(max(g, 0.0), gamma_max)
            sig = a0 * (1.0 - g)
    v_on = _quantile(h, total, p_on) if p_on >= st else _beyond(total, weight, p_on, t, st, a0, g, sig, top)
    v_band = _quantile(h, total, p_band) if p_band >= st else _beyond(total, weight, p_band, t, st, a0, g, sig, top)
    return v_on, v_band
