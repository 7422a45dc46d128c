"""Engineered features for the multivariate IsolationForest.

From a `Context` (sorted readings with per-device baselines), per reading:
- `<metric>`: the raw value of every metric present (core metrics and numeric extras);
- `power`: voltage × current, when both are present (a surge at normal voltage and a sag at
  normal current look alike per metric but not in power);
- `<metric>_dev`: deviation from the device's rolling baseline centre (0 while the device has
  no baseline yet), which removes the daily load cycle and the device's own operating point;
- `<metric>_delta`: change since the device's previous reading (0 for its first reading).
  A change per reading rather than per second: intervals jitter, and a division by a
  near-zero interval would invent spikes;
- `<metric>_trend`: how far the device's baseline centre moved over the last `trend_bins`
  (30) minutes (0 until it has that much history). A daily cycle moves it a little; a degrading
  transformer that the rolling baseline would otherwise follow moves it far more than anything
  in a day of training data.

Non-finite inputs are replaced by fill values learnt at training time (the training median of
each feature), so a missing extra metric degrades the score gracefully instead of raising.
"""

from __future__ import annotations

import numpy as np

from gridmon.detection.context import Context


def feature_names(metrics: list[str]) -> list[str]:
    """Column names produced by `build_features` for these metrics, in order."""
    names = list(metrics)
    if "voltage" in metrics and "current" in metrics:
        names.append("power")
    names += [f"{m}_dev" for m in metrics]
    names += [f"{m}_delta" for m in metrics]
    names += [f"{m}_trend" for m in metrics]
    return names


def build_features(ctx: Context, rows: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Feature matrix (float64) for the context rows selected by `rows` (all when None)."""
    sel = slice(None) if rows is None else rows
    values = ctx.values[sel]
    parts = [values]
    if "voltage" in ctx.metrics and "current" in ctx.metrics:
        v = values[:, ctx.metrics.index("voltage")]
        i = values[:, ctx.metrics.index("current")]
        parts.append((v * i)[:, None])
    parts.append(np.nan_to_num(values - ctx.center[sel], nan=0.0, posinf=0.0, neginf=0.0))
    parts.append(ctx.delta[sel])
    parts.append(np.nan_to_num(ctx.trend[sel], nan=0.0, posinf=0.0, neginf=0.0))
    return feature_names(ctx.metrics), np.hstack(parts)


def align(names: list[str], matrix: np.ndarray, wanted: list[str], fill: np.ndarray) -> np.ndarray:
    """Reorder columns to `wanted`, filling absent ones and non-finite cells from `fill`.

    Returns a C-contiguous float32 matrix, the dtype scikit-learn's trees compute in, so
    scoring does not copy it again.
    """
    index = {name: i for i, name in enumerate(names)}
    out = np.empty((matrix.shape[0], len(wanted)), dtype=np.float32)
    for j, name in enumerate(wanted):
        col = matrix[:, index[name]] if name in index else np.full(matrix.shape[0], np.nan)
        out[:, j] = np.where(np.isfinite(col), col, fill[j])
    return out
