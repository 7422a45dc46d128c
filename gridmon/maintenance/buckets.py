"""Readings summarised into fixed time buckets: the one input shape every analysis works on.

A week of one-second readings is 600,000 rows per device; the analysis needs a few hundred
summaries. The task asks PostgreSQL for the buckets (`storage.BUCKETS_SQL`); the evaluation and
the tests build the same frame from raw readings here. A test inserts readings into the database
and checks that both paths give the same frame, so the analysis truly is the same code.

Bucket frame columns (one row per non-empty bucket, sorted by `bucket` ascending):
  bucket       bucket start, epoch s (multiple of bucket_s)
  n            readings in the bucket
  t_mean, t_min, t_max   reading times, epoch s
  temp_median, temp_max  temperature, °C (median: robust to single hot readings)
  volt_mean, volt_var    voltage mean and population variance, V and V²
  cur_mean, cur_max      current, A
  cur_over     readings above the rated current
  cur_spikes   readings above spike_factor × rated current
  faa_mean     mean IEEE C57.91 aging factor of the readings (hot spot = temperature + rise)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridmon.maintenance.aging import aging_factor_from_sensor

BUCKET_COLUMNS = (
    "bucket",
    "n",
    "t_mean",
    "t_min",
    "t_max",
    "temp_median",
    "temp_max",
    "volt_mean",
    "volt_var",
    "cur_mean",
    "cur_max",
    "cur_over",
    "cur_spikes",
    "faa_mean",
)


def empty_buckets() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=float) for name in BUCKET_COLUMNS})


def window(readings: pd.DataFrame, *, start: float, end: float) -> pd.DataFrame:
    """Readings with start < ts ≤ end, oldest first (whatever order they came in)."""
    ts = readings["ts"].astype(float)
    return readings.loc[(ts > start) & (ts <= end)].sort_values("ts", kind="stable")


def bucketize(
    readings: pd.DataFrame, *, bucket_s: float, rated_current: float, spike_factor: float, rise_c: float
) -> pd.DataFrame:
    """The bucket frame of raw readings (columns ts, voltage, current, temperature)."""
    if readings.empty:
        return empty_buckets()
    frame = pd.DataFrame(
        {
            "ts": readings["ts"].astype(float).to_numpy(),
            "temperature": readings["temperature"].astype(float).to_numpy(),
            "voltage": readings["voltage"].astype(float).to_numpy(),
            "current": readings["current"].astype(float).to_numpy(),
        }
    )
    frame["bucket"] = np.floor(frame["ts"] / bucket_s) * bucket_s
    frame["over"] = (frame["current"] > rated_current).astype(int)
    frame["spike"] = (frame["current"] > spike_factor * rated_current).astype(int)
    frame["faa"] = aging_factor_from_sensor(frame["temperature"].to_numpy(), rise_c)
    grouped = frame.groupby("bucket", sort=True)
    out = pd.DataFrame(
        {
            "n": grouped["ts"].size(),
            "t_mean": grouped["ts"].mean(),
            "t_min": grouped["ts"].min(),
            "t_max": grouped["ts"].max(),
            "temp_median": grouped["temperature"].median(),
            "temp_max": grouped["temperature"].max(),
            "volt_mean": grouped["voltage"].mean(),
            # population variance, as PostgreSQL's var_pop
            "volt_var": grouped["voltage"].var(ddof=0),
            "cur_mean": grouped["current"].mean(),
            "cur_max": grouped["current"].max(),
            "cur_over": grouped["over"].sum(),
            "cur_spikes": grouped["spike"].sum(),
            "faa_mean": grouped["faa"].mean(),
        }
    ).reset_index()
    return out[list(BUCKET_COLUMNS)].astype(float)


def covered_seconds(buckets: pd.DataFrame, bucket_s: float) -> np.ndarray:
    """Seconds of each bucket the readings stand for.

    A bucket spans from its first to its last reading plus one typical reading interval (the
    median over buckets), capped at the bucket width: gaps between buckets count as unobserved.
    """
    if buckets.empty:
        return np.zeros(0)
    n = buckets["n"].to_numpy(dtype=float)
    span = (buckets["t_max"] - buckets["t_min"]).to_numpy(dtype=float)
    per_reading = span[n > 1] / (n[n > 1] - 1)
    step = float(np.median(per_reading)) if per_reading.size else bucket_s
    return np.minimum(span + step, bucket_s)


def combined_variance(n: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float:
    """Population variance of the union of groups given each group's size, mean and variance."""
    ok = n > 0
    n, mean, var = n[ok], mean[ok], var[ok]
    total = float(n.sum())
    if total == 0:
        return float("nan")
    grand = float((n * mean).sum() / total)
    return float(((n * (var + (mean - grand) ** 2)).sum()) / total)
