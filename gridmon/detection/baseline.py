"""The rolling per-device baseline: where each metric of a device normally is, and how noisy.

How it works, and why:
- Readings of a device are cut into time bins (`bin_s`, default 60 s). Each bin gets a mean
  and a standard deviation per metric (one vectorised pass, `np.add.reduceat`).
- The baseline of a bin is the median of the bin means (centre) and the median of the bin
  standard deviations (scale) over the device's previous `window_bins` *accepted* bins. Medians
  across bins make it robust: a spike inflates one bin's mean and deviation, and one bin out of
  fifteen does not move a median. The current bin is never part of its own baseline, so a fault
  cannot hide by dragging the baseline along in its first minutes.
- Following daily load cycles: a 24 h cycle moves a bin mean by a small fraction of the noise
  from one minute to the next, so every bin of a normal day is accepted and the centre tracks
  the cycle with a lag of about half the window.
- Not following faults: a bin whose mean sits more than `accept_z` scales from the current
  centre is rejected, and the baseline stays frozen while the fault lasts — an hour of
  overheating stays anomalous for the hour instead of becoming the new normal after a few
  minutes. A genuine permanent change is accepted after `max_freeze_s`. A bin whose spread
  collapsed below a tenth of the usual one (a stuck sensor repeating its last value) is
  rejected too, or the recovery from it would look like an anomaly — also before the baseline
  exists, judged against the device's typical spread so far (the median deviation of its bins
  up to this one: a scan's history window can start inside a stuck stretch), and a bin of
  identical readings (deviation 0 up to rounding) counts as collapsed then.
- A device needs `min_bins` accepted bins before it has a baseline at all; until then its
  centre is NaN and the statistical detector stays silent for it (safe on short input).
- The scale combines the within-bin noise (median of the bin deviations) with the wander of the
  level between bins (MAD × 1.4826 of the window's bin means): a reading's distance from the
  centre is made of both. On a steady sensor the second term is small (noise / √readings per
  bin); on a wandering process it keeps normal wander from looking like a fault. Sparse devices
  (one reading per bin or fewer) have no within-bin spread and rely on the second term alone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

MAD_TO_SIGMA = 1.4826
RELATIVE_SCALE_FLOOR = 1e-3
COLLAPSE_RATIO = 0.1
# A bin of identical readings has a deviation of rounding size only (≈1e-16 of its level).
IDENTICAL_RELATIVE_STD = 1e-9


@dataclass(frozen=True)
class BaselineConfig:
    """Knobs of the rolling baseline (see the module docstring)."""

    bin_s: float = 60.0
    window_bins: int = 15
    min_bins: int = 5
    accept_z: float = 3.0
    max_freeze_s: float = 3 * 3600.0
    trend_bins: int = 30


def bin_statistics(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation per bin; `starts` are the first rows of the bins.

    NaN values are ignored; a bin with no finite value has a NaN mean, one with fewer than two a
    NaN deviation.
    """
    finite = np.isfinite(values)
    clean = np.where(finite, values, 0.0)
    count = np.add.reduceat(finite.astype(np.float64), starts, axis=0)
    total = np.add.reduceat(clean, starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        # Centred second pass: sums of squares of raw values (≈ 230² for voltage) would cancel badly.
        centred = np.where(finite, values - np.repeat(mean, np.diff(np.append(starts, len(values))), axis=0), 0.0)
        sq = np.add.reduceat(centred * centred, starts, axis=0)
        std = np.sqrt(sq / (count - 1.0))
    std[count < 2] = np.nan
    return mean, std


def _median_axis1(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over axis 1 ignoring NaN (NaN where none), and the number of values used."""
    count = np.sum(~np.isnan(buf), axis=1)
    ordered = np.sort(buf, axis=1)  # NaN sorts last
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.maximum(count // 2, 0)
    a = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
    b = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
    med = 0.5 * (a + b)
    med[count == 0] = np.nan
    return med, count


def _typical_so_far(stds: np.ndarray, r: int, cells: np.ndarray) -> np.ndarray:
    """Median bin deviation of ranks 0..r for the (device, metric) cells selected by `cells`."""
    typical = np.full(cells.shape, np.nan)
    dev, met = np.nonzero(cells)
    if dev.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN history: no typical spread
            typical[dev, met] = np.nanmedian(stds[dev, : r + 1, met], axis=1)
    return typical


def roll_accepted(means: np.ndarray, stds: np.ndarray, config: BaselineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of every (device, bin rank, metric) from earlier accepted bins.

    `means` and `stds` are (devices, ranks, metrics), NaN where a device has no such bin. The
    walk is sequential in time (acceptance depends on the baseline so far) but vectorised over
    devices and metrics, so its cost grows with the time span, not the number of readings.
    Nothing at rank r depends on a later rank: the verdict of a reading never looks ahead.
    """
    n_dev, n_ranks, n_metrics = means.shape
    k = max(1, int(config.window_bins))
    max_frozen = max(1, round(config.max_freeze_s / config.bin_s))
    # One buffer for means and deviations: (devices, window, 2 × metrics), one sort per step.
    buf = np.full((n_dev, k, 2 * n_metrics), np.nan)
    write = np.zeros((n_dev, n_metrics), dtype=np.int64)
    frozen = np.zeros((n_dev, n_metrics), dtype=np.int64)
    centers = np.full_like(means, np.nan)
    scales = np.full_like(means, np.nan)
    dev_idx, met_idx = np.meshgrid(np.arange(n_dev), np.arange(n_metrics), indexing="ij")
    for r in range(n_ranks):
        med, count = _median_axis1(buf)
        ready = count[:, :n_metrics] >= config.min_bins
        center = np.where(ready, med[:, :n_metrics], np.nan)
        within = med[:, n_metrics:]
        between = _between_bin_scale(buf[:, :, :n_metrics], center)
        with np.errstate(invalid="ignore"):
            # Noise around the level plus the wander of the level itself between bins.
            combined = np.sqrt(np.nan_to_num(within) ** 2 + between**2)
            scale = np.where(ready, combined, np.nan)
        centers[:, r] = center
        scales[:, r] = scale

        m = means[:, r]
        s = stds[:, r]
        present = ~np.isnan(m)
        with np.errstate(invalid="ignore"):
            far = np.abs(m - center) > config.accept_z * np.maximum(scale, RELATIVE_SCALE_FLOOR * np.abs(center))
            collapsed = s < COLLAPSE_RATIO * scale
            # Before a baseline exists there is no scale to compare with: judge a bin's spread
            # against the device's typical spread so far, and call a bin of identical readings
            # frozen, so a window that starts inside a stuck stretch does not build its
            # baseline from frozen values. Only the few not-ready cells pay for the median.
            early = ~ready & present & np.isfinite(s)
            typical = _typical_so_far(stds, r, early)
            identical = s <= IDENTICAL_RELATIVE_STD * np.maximum(np.abs(m), 1.0)
            early_collapsed = early & (identical | (s < COLLAPSE_RATIO * typical))
        reject = present & ((ready & (far | collapsed)) | early_collapsed)
        frozen = np.where(reject, frozen + 1, np.where(present, 0, frozen))
        accept = present & (~reject | (frozen > max_frozen))
        if accept.any():
            d, mm = dev_idx[accept], met_idx[accept]
            slot = write[accept] % k
            buf[d, slot, mm] = m[accept]
            buf[d, slot, mm + n_metrics] = s[accept]
            write[accept] += 1
    return centers, scales


def _between_bin_scale(window_means: np.ndarray, center: np.ndarray) -> np.ndarray:
    mad, _ = _median_axis1(np.abs(window_means - center[:, None, :]))
    return MAD_TO_SIGMA * mad


def device_baseline(
    codes: np.ndarray, ts: np.ndarray, values: np.ndarray, n_devices: int, config: BaselineConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row centre, scale and trend for readings sorted by (device code, ts).

    The trend is the change of the centre over the last `trend_bins` bins of the device (NaN
    until it has that many): how fast its normal level is moving.
    """
    n, n_metrics = values.shape
    bins = np.floor(ts / config.bin_s).astype(np.int64)
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = (codes[1:] != codes[:-1]) | (bins[1:] != bins[:-1])
    starts = np.flatnonzero(boundary)
    group = np.cumsum(boundary) - 1
    mean, std = bin_statistics(values, starts)

    group_dev = codes[starts]
    first_group = np.full(n_devices, len(starts), dtype=np.int64)
    np.minimum.at(first_group, group_dev, np.arange(len(starts)))
    rank = np.arange(len(starts)) - first_group[group_dev]
    n_ranks = int(rank.max()) + 1
    dense_mean = np.full((n_devices, n_ranks, n_metrics), np.nan)
    dense_std = np.full((n_devices, n_ranks, n_metrics), np.nan)
    dense_mean[group_dev, rank] = mean
    dense_std[group_dev, rank] = std

    c_dense, s_dense = roll_accepted(dense_mean, dense_std, config)
    lag = max(1, int(config.trend_bins))
    t_dense = np.full_like(c_dense, np.nan)
    if n_ranks > lag:
        t_dense[:, lag:] = c_dense[:, lag:] - c_dense[:, :-lag]
    row_dev, row_rank = group_dev[group], rank[group]
    return c_dense[row_dev, row_rank], s_dense[row_dev, row_rank], t_dense[row_dev, row_rank]
