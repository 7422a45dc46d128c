"""`gridmon eval` on the simulator's fault catalogue: how well does `detect` find known faults?

The run, all seeded and deterministic:
1. A *training* fleet (`seed + TRAIN_SEED_OFFSET`, same size, same fault rate) stands in for the
   day of unlabelled history production retrains on. Its ground truth is thrown away: the forest
   is trained on its readings as they are, faults included (training trims what the robust
   baseline already calls abnormal — no labels are involved).
2. The *evaluation* fleet: `devices` devices with faults of the whole catalogue plus
   `fault_free_devices` without any. `detect` runs over it (the same function the scan task
   calls), findings are grouped into episodes, episodes are matched to the truth
   (`gridmon.evaluation.scoring`). This is the `overall` row.
3. `by_kind`: for each fault kind, the same fleet and seed with faults of that kind only, scored
   the same way — so each kind has a precision of its own (a false alarm has no kind).
4. `baseline`: the original design's detector (`gridmon.evaluation.original`), trained on the
   same training fleet, run on the same evaluation fleet and scored the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gridmon.detection.base import Finding
from gridmon.detection.episodes import group_into_episodes
from gridmon.detection.forest import TrainedForest, train_forest
from gridmon.detection.pipeline import detect
from gridmon.evaluation.original import detect_original, train_original
from gridmon.evaluation.scoring import DAY_S, TruthEvent, event_scores
from gridmon.simulator.catalogue import FAULT_KINDS, Fault
from gridmon.simulator.dataset import Dataset, generate_dataset

log = logging.getLogger(__name__)

TRAIN_SEED_OFFSET = 1000


@dataclass(frozen=True)
class CatalogueSetup:
    """What `gridmon eval` generates and how it matches (defaults are the documented run)."""

    devices: int = 10
    fault_free_devices: int = 5
    duration_s: float = DAY_S
    interval_s: float = 2.0
    seed: int = 0
    faults_per_device_day: float = 4.0
    tolerance_s: float = 30.0
    max_gap_s: float = 60.0
    per_kind: bool = True
    baseline: bool = True


def _generate(setup: CatalogueSetup, seed: int, kinds: Sequence[str] | None) -> Dataset:
    return generate_dataset(
        devices=setup.devices + setup.fault_free_devices,
        fault_free_devices=setup.fault_free_devices,
        duration_s=setup.duration_s,
        interval_s=setup.interval_s,
        seed=seed,
        faults_per_device_day=setup.faults_per_device_day,
        kinds=kinds,
    )


def _truth(faults: Sequence[Fault]) -> list[TruthEvent]:
    return [TruthEvent(f.device_id, f.start, f.end, f.kind) for f in faults]


def _score(findings: list[Finding], data: Dataset, setup: CatalogueSetup) -> dict[str, Any]:
    episodes = group_into_episodes(findings, max_gap_s=setup.max_gap_s)
    days = setup.duration_s / DAY_S
    scores = event_scores(
        episodes,
        _truth(data.truth),
        tolerance_s=setup.tolerance_s,
        fault_free_devices=data.fault_free,
        fault_free_days=len(data.fault_free) * days,
    )
    false_episodes = int(scores["false_episodes"] or 0)
    scores["false_episodes_per_device_day_all"] = false_episodes / max(len(data.devices) * days, 1e-9)
    scores["findings"] = len(findings)
    return scores


def evaluate_catalogue(setup: CatalogueSetup | None = None) -> dict[str, Any]:
    """Run the evaluation described in the module docstring; returns the JSON-ready report."""
    setup = setup or CatalogueSetup()
    train_seed = setup.seed + TRAIN_SEED_OFFSET
    training = _generate(setup, train_seed, None)
    model: TrainedForest = train_forest(training.readings)
    log.info("forest trained on %d readings (threshold %.4f)", model.metrics["n_samples"], model.threshold)

    data = _generate(setup, setup.seed, None)
    overall = _score(detect(data.readings, model=model), data, setup)
    overall["readings"] = len(data.readings)

    by_kind: dict[str, dict[str, Any]] = {}
    if setup.per_kind:
        for kind in FAULT_KINDS:
            kind_data = _generate(setup, setup.seed, [kind])
            by_kind[kind] = _score(detect(kind_data.readings, model=model), kind_data, setup)

    report: dict[str, Any] = {"overall": overall, "by_kind": by_kind}
    if setup.baseline:
        original = train_original(training.readings)
        report["baseline"] = _score(detect_original(original, data.readings), data, setup)
    report["setup"] = {**asdict(setup), "train_seed": train_seed, "training": "separate fleet, labels unused"}
    report["forest"] = {
        "n_samples": model.metrics["n_samples"],
        "n_trimmed": model.metrics.get("n_trimmed"),
        "threshold": model.threshold,
        "calibrated_far": model.metrics["calibrated_far"],
    }
    return report
