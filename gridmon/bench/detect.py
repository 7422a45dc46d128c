"""`gridmon bench detect`: how fast detection scores readings and how long a retrain takes.

Everything runs in this one process, single-threaded, through `detect` — the function the scan
task calls — with a trained forest, so the figures are per worker process:
- `score_readings_per_s`: one large frame (a backlog) with `--history-minutes` of history before
  it, readings of the frame divided by the wall time of `detect` (median of `--repeats` runs).
- `sklearn_iforest_alone_readings_per_s`: for reference, in the same run, scikit-learn's own
  `IsolationForest.score_samples` on the same readings' features and nothing else.
- `scan_readings_per_s`: the same readings cut into scans of `--scan-seconds`, each with its own
  `--history-minutes` of history, as the periodic scan task sees them.
- `safety_readings_per_s`: the safety check alone (the ingest path).
- `retrain_s`: `train_forest` on `--train-readings` readings (the forest is fit and calibrated on
  a random sample of at most `max_train_rows` of them; the baselines and features are computed
  for all).
The data come from the simulator (seeded). `gridmon bench detect` (`gridmon.cli.bench`) prints
the report, one JSON object last.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from gridmon.detection import pipeline
from gridmon.detection.context import build_context
from gridmon.detection.features import align, build_features
from gridmon.detection.forest import train_forest
from gridmon.detection.safety import check_safety
from gridmon.simulator.dataset import generate_dataset


def _fleet(devices: int, readings: int, interval_s: float, seed: int, extra_s: float = 0.0) -> pd.DataFrame:
    duration = readings / devices * interval_s + extra_s
    return generate_dataset(devices=devices, duration_s=duration, interval_s=interval_s, seed=seed).readings


def run_bench(
    *,
    readings: int,
    devices: int,
    history_minutes: float,
    scan_seconds: float,
    scans: int,
    train_readings: int,
    interval_s: float = 2.0,
    seed: int = 0,
    repeats: int = 3,
) -> dict[str, Any]:
    """Measure as described in the module docstring; returns the JSON-ready report."""
    training = _fleet(devices, train_readings, interval_s, seed)
    started = time.perf_counter()
    model = train_forest(training)
    retrain_s = time.perf_counter() - started

    history_s = history_minutes * 60.0
    data = _fleet(devices, readings, interval_s, seed + 1, extra_s=history_s)
    t0 = float(data["ts"].min()) + history_s
    history, frame = data[data["ts"] < t0], data[data["ts"] >= t0]

    bulk_times = []
    findings: list[Any] = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        findings = pipeline.detect(frame, history=history, model=model)
        bulk_times.append(time.perf_counter() - started)
    bulk_s = statistics.median(bulk_times)

    # Reference: scikit-learn's own IsolationForest scoring of the same rows' features.
    ctx = build_context(frame, history, model.baseline)
    names, raw = build_features(ctx, np.flatnonzero(ctx.is_new))
    x = align(names, raw, model.feature_names, model.fill_values)
    started = time.perf_counter()
    model.estimator.score_samples(x)
    sklearn_s = time.perf_counter() - started

    scan_rows = 0
    scan_time = 0.0
    for k in range(scans):
        lo = t0 + k * scan_seconds
        scan = data[(data["ts"] >= lo) & (data["ts"] < lo + scan_seconds)]
        past = data[(data["ts"] >= lo - history_s) & (data["ts"] < lo)]
        started = time.perf_counter()
        pipeline.detect(scan, history=past, model=model)
        scan_time += time.perf_counter() - started
        scan_rows += len(scan)

    started = time.perf_counter()
    check_safety(frame)
    safety_s = time.perf_counter() - started
    return {
        "score_readings_per_s": len(frame) / bulk_s,
        "sklearn_iforest_alone_readings_per_s": len(frame) / sklearn_s,
        "scan_readings_per_s": scan_rows / scan_time if scan_time else None,
        "safety_readings_per_s": len(frame) / safety_s,
        "retrain_s": retrain_s,
        "train_readings": len(training),
        "train_samples": model.metrics["n_samples"],
        "scored_readings": len(frame),
        "history_readings": len(history),
        "findings": len(findings),
        "devices": devices,
        "scan": {"seconds": scan_seconds, "scans": scans, "readings": scan_rows, "history_minutes": history_minutes},
    }
