"""`gridmon eval` on the simulator's fault catalogue: found faults, false alerts, alarm time.

The run, all seeded and deterministic:
1. A fleet of `devices` devices with faults of the whole catalogue plus `fault_free_devices`
   without any, over `history_days` of fault-free history followed by the scored day
   (`duration_s`). Faults fall in the scored day only (after the usual warm-up of 10 % of it, at
   most an hour). The history is what a detector learns a device from — its daily cycle
   included — as NAB gives a probation period.
2. Each device's series goes through `gridmon.evaluation.adapter.detect_series` with its
   history rows as training rows (the one door to the detector). Its flagged readings in the
   scored day become alarms (episodes closer than the episode gap, which is the production
   setting), scored by `gridmon.evaluation.scoring.event_scores` against the injected faults:
   false alerts on every device, alarm-time precision, event precision/recall/F1, delay.
3. Reference rows from the same fleet, scored the same way: `null` (never fires),
   `flag_everything` (every scored reading), and `original_design` (the original detector,
   `gridmon.evaluation.original`, trained on the same history rows of the whole fleet — it was
   one fleet model). A figure means something only where it beats both trivial rows.
4. `by_kind`: for each fault kind, the same fleet and seed with faults of that kind only (the
   same history), scored the same way — so each kind has a precision of its own.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from gridmon.domain.units import DAY_S
from gridmon.evaluation.adapter import detect_series
from gridmon.evaluation.original import detect_original, train_original
from gridmon.evaluation.scoring import Alarm, TruthEvent, alarms_from_flags, event_scores
from gridmon.simulator.catalogue import FAULT_KINDS
from gridmon.simulator.dataset import Dataset, generate_dataset

log = logging.getLogger(__name__)

MAX_WARMUP_S = 3600.0


@dataclass(frozen=True)
class CatalogueSetup:
    """What `gridmon eval` generates and how it scores (defaults are the documented run)."""

    devices: int = 10
    fault_free_devices: int = 5
    duration_s: float = DAY_S
    """The scored span (after the history)."""
    history_days: float = 3.0
    """Fault-free days before the scored span: the detector's training rows."""
    interval_s: float = 2.0
    seed: int = 0
    faults_per_device_day: float = 4.0
    """Faults per faulty device and scored day."""
    tolerance_s: float = 30.0
    episode_gap_s: float = 120.0
    """Flagged readings closer than this are one alarm: pass the production setting."""
    per_kind: bool = True
    baseline: bool = True


def generate(setup: CatalogueSetup, kinds: Sequence[str] | None) -> tuple[Dataset, float]:
    """The fleet over history + scored span, and the time the scored span starts."""
    history_s = setup.history_days * DAY_S
    total_s = history_s + setup.duration_s
    data = generate_dataset(
        devices=setup.devices + setup.fault_free_devices,
        fault_free_devices=setup.fault_free_devices,
        duration_s=total_s,
        interval_s=setup.interval_s,
        seed=setup.seed,
        # the generator spreads faults over the whole span's rate; all of them land after the warm-up
        faults_per_device_day=setup.faults_per_device_day * setup.duration_s / total_s,
        kinds=kinds,
        warmup_s=history_s + min(MAX_WARMUP_S, 0.1 * setup.duration_s),
    )
    return data, float(data.readings["ts"].min()) + history_s


def _truth(data: Dataset) -> list[TruthEvent]:
    return [TruthEvent(f.device_id, f.start, f.end, f.kind) for f in data.truth]


def _per_device(readings: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(d): part.reset_index(drop=True) for d, part in readings.groupby("device_id", sort=True)}


def _score(
    flags: dict[str, np.ndarray],
    devices: dict[str, pd.DataFrame],
    scored_from: float,
    data: Dataset,
    setup: CatalogueSetup,
) -> dict[str, Any]:
    alarms: list[Alarm] = []
    for device, frame in devices.items():
        ts = frame["ts"].to_numpy(dtype=float)
        scored = ts >= scored_from
        alarms += alarms_from_flags(device, ts[scored], flags[device][scored], gap_s=setup.episode_gap_s)
    days = setup.duration_s / DAY_S
    row = event_scores(alarms, _truth(data), tolerance_s=setup.tolerance_s, device_days=len(devices) * days)
    row["flagged_readings"] = int(
        sum(int(f[devices[d]["ts"].to_numpy() >= scored_from].sum()) for d, f in flags.items())
    )
    return row


def _gridmon_flags(
    devices: dict[str, pd.DataFrame], scored_from: float, seen: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The adapter's flags per device. `seen` remembers verdicts by series content within a run:
    a fault-free device is the same series in every per-kind fleet (detection is deterministic)."""
    out = {}
    for device, frame in devices.items():
        train_rows = int(np.searchsorted(frame["ts"].to_numpy(dtype=float), scored_from, side="left"))
        content = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
        key = f"{train_rows}:{hashlib.sha1(content, usedforsecurity=False).hexdigest()}"
        if key not in seen:
            seen[key] = detect_series(frame, train_rows).flags
        out[device] = seen[key]
    return out


def _original_flags(devices: dict[str, pd.DataFrame], scored_from: float) -> dict[str, np.ndarray]:
    history = pd.concat([f[f["ts"] < scored_from] for f in devices.values()], ignore_index=True)
    model = train_original(history)
    out = {}
    for device, frame in devices.items():
        scored = frame[frame["ts"] >= scored_from]
        flagged = {f.ts for f in detect_original(model, scored)}
        out[device] = frame["ts"].isin(flagged).to_numpy() & (frame["ts"] >= scored_from).to_numpy()
    return out


def evaluate_catalogue(setup: CatalogueSetup | None = None) -> dict[str, Any]:
    """Run the evaluation described in the module docstring; returns the JSON-ready report."""
    setup = setup or CatalogueSetup()
    data, scored_from = generate(setup, None)
    devices = _per_device(data.readings)
    seen: dict[str, np.ndarray] = {}
    rows: dict[str, dict[str, Any]] = {
        "gridmon": _score(_gridmon_flags(devices, scored_from, seen), devices, scored_from, data, setup)
    }
    rows["null"] = _score(
        {d: np.zeros(len(f), dtype=bool) for d, f in devices.items()}, devices, scored_from, data, setup
    )
    everything = {d: (f["ts"] >= scored_from).to_numpy() for d, f in devices.items()}
    rows["flag_everything"] = _score(everything, devices, scored_from, data, setup)
    if setup.baseline:
        rows["original_design"] = _score(_original_flags(devices, scored_from), devices, scored_from, data, setup)
    by_kind: dict[str, dict[str, Any]] = {}
    if setup.per_kind:
        for kind in FAULT_KINDS:
            kind_data, kind_from = generate(setup, [kind])
            kind_devices = _per_device(kind_data.readings)
            by_kind[kind] = _score(
                _gridmon_flags(kind_devices, kind_from, seen), kind_devices, kind_from, kind_data, setup
            )
            log.info("catalogue %s: %s", kind, by_kind[kind])
    scored_readings = int((data.readings["ts"] >= scored_from).sum())
    return {
        "rows": rows,
        "by_kind": by_kind,
        "setup": {
            **asdict(setup),
            "scored_readings": scored_readings,
            "history_readings": len(data.readings) - scored_readings,
        },
    }
