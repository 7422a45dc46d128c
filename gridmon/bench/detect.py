"""`gridmon bench detect`: how fast the streaming detector scores readings, in one process.

Everything runs single-threaded in this process through the functions the scan job calls, on a
seeded simulated fleet (`--devices`, a reading every `--interval` seconds), with an active forest:
- `score_readings_per_s`: every device's readings scored in one call each (a backlog), fresh
  states, readings / wall time of the scoring (median of `--repeats` runs). Compilation happens
  once before timing.
- `scan_readings_per_s`: the same readings cut into scan steps of `--scan-seconds`; each step
  loads every device's state from bytes, scores the device's new readings and stores the state
  again (`score_rows` + `to_bytes`/`from_bytes`), as a scan does minus the database. The flags
  are checked to equal the one-pass flags (`scan_equals_one_pass`).
- `safety_readings_per_s`: the safety check alone (the ingest path).
- `retrain_s`: training the group's forest from a replay of the devices' readings.
`gridmon bench scan` (`bench/scan.py`) measures the scan with its database work. JSON last.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from gridmon.detection.safety import check_safety
from gridmon.detection.stream.device import DeviceRows, score_rows, split_devices
from gridmon.detection.stream.forest import FlatForest
from gridmon.detection.stream.state import DeviceState
from gridmon.detection.stream.training import train_groups
from gridmon.simulator.dataset import generate_dataset


def _fleet(devices: int, hours: float, interval_s: float, seed: int) -> pd.DataFrame:
    frame = generate_dataset(devices=devices, duration_s=hours * 3600.0, interval_s=interval_s, seed=seed).readings
    return frame.sort_values(["device_id", "ts"], ignore_index=True)


def _one_pass(devices: list[DeviceRows], forest: FlatForest | None) -> tuple[float, dict[str, np.ndarray]]:
    started = time.perf_counter()
    flags = {}
    for rows in devices:
        _, result = score_rows(DeviceState.new(rows.columns), rows, forest=forest)
        flags[rows.device_id] = result.output.flag
    return time.perf_counter() - started, flags


def _in_steps(
    devices: list[DeviceRows], forest: FlatForest | None, step_s: float
) -> tuple[float, int, dict[str, np.ndarray]]:
    t0 = min(float(r.ts[0]) for r in devices)
    t1 = max(float(r.ts[-1]) for r in devices)
    blobs = {r.device_id: DeviceState.new(r.columns).to_bytes() for r in devices}
    flags: dict[str, list[np.ndarray]] = {r.device_id: [] for r in devices}
    elapsed, steps, lo = 0.0, 0, t0
    while lo <= t1:
        pieces = []
        for rows in devices:
            a, b = np.searchsorted(rows.ts, [lo, lo + step_s])
            if b > a:
                pieces.append(DeviceRows(rows.device_id, rows.ts[a:b], rows.values[a:b], rows.columns))
        started = time.perf_counter()
        for piece in pieces:
            state = DeviceState.from_bytes(blobs[piece.device_id])
            assert state is not None
            state, result = score_rows(state, piece, forest=forest)
            blobs[piece.device_id] = state.to_bytes()
            flags[piece.device_id].append(result.output.flag)
        elapsed += time.perf_counter() - started
        steps += 1
        lo += step_s
    return elapsed, steps, {d: np.concatenate(f) if f else np.zeros(0, bool) for d, f in flags.items()}


def run_bench(
    *, devices: int, hours: float, interval_s: float, scan_seconds: float, seed: int = 0, repeats: int = 3
) -> dict[str, Any]:
    """Measure as described in the module docstring; returns the JSON-ready report."""
    frame = _fleet(devices, hours, interval_s, seed)
    started = time.perf_counter()
    forests, used = train_groups(frame, {}, seed=seed)
    retrain_s = time.perf_counter() - started
    [forest] = forests.forests.values()
    rows = list(split_devices(frame))
    _one_pass(rows[:1], forest)  # compile outside the timed runs
    times = []
    one: dict[str, np.ndarray] = {}
    for _ in range(max(1, repeats)):
        seconds, one = _one_pass(rows, forest)
        times.append(seconds)
    step_times = []
    stepped: dict[str, np.ndarray] = {}
    steps = 0
    for _ in range(max(1, repeats)):
        seconds, steps, stepped = _in_steps(rows, forest, scan_seconds)
        step_times.append(seconds)
    started = time.perf_counter()
    check_safety(frame)
    safety_s = time.perf_counter() - started
    n = len(frame)
    return {
        "score_readings_per_s": n / statistics.median(times),
        "scan_readings_per_s": n / statistics.median(step_times),
        "scan_equals_one_pass": all(np.array_equal(one[d], stepped[d]) for d in one),
        "safety_readings_per_s": n / safety_s,
        "retrain_s": retrain_s,
        "train_rows": sum(used.values()),
        "readings": n,
        "devices": devices,
        "alarm_readings": int(sum(f.sum() for f in one.values())),
        "scan": {"seconds": scan_seconds, "steps": steps},
        "repeats": repeats,
    }
