"""Scoring failure-time prediction on simulated devices whose failure time is known.

Degrading devices come from `gridmon.simulator.dataset.degradation_scenario` over a grid of
slopes, noise levels and onsets (the degradation starts at the first reading, or some days into
the history); healthy devices from `healthy_scenario`. Each degrading device is cut at 25 %, 50 %
and 75 % of the way from the onset of degradation to its failure, and everything up to the cut
goes through `predict_from_readings` — the same code the Celery task runs after its SQL. The
original design's rule-based predictor (`gridmon.evaluation.maintenance_baseline`) runs on the same cuts.

Scores (docs/maintenance.md explains them):
- error_pct[f]: mean |predicted − true failure time| as % of the true remaining time at cut f,
  over the cuts that got a date (cuts left undated are counted in `undated`);
- interval_coverage: share of all degrading cuts whose interval contains the true time (an
  undated cut counts as not covered);
- healthy_with_date: healthy devices that got a failure date at any of their cuts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridmon.domain.units import DAY_S
from gridmon.evaluation.maintenance_baseline import baseline_predict
from gridmon.maintenance.model import DeviceProfile, MaintenanceConfig
from gridmon.maintenance.predict import predict_from_readings

FRACTIONS = (0.25, 0.5, 0.75)
SLOPES_C_PER_DAY = (0.5, 1.0, 2.0, 4.0)
NOISES_C = (0.5, 1.5, 3.0)
ONSETS_DAYS = (0.0, 5.0)
HEALTHY_CUTS_DAYS = (2.0, 4.0, 7.0, 10.0)
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LIMIT_C = 80.0


@dataclass(frozen=True, slots=True)
class EvalSpec:
    seeds: int = 2
    interval_s: float = 60.0
    healthy_per_noise: int = 10
    seed_base: int = 0
    """Shifts every scenario's seed: rerun on fresh draws without changing the grid."""
    slopes: tuple[float, ...] = SLOPES_C_PER_DAY
    noises: tuple[float, ...] = NOISES_C
    onsets_days: tuple[float, ...] = ONSETS_DAYS


QUICK = EvalSpec(seeds=1, interval_s=300.0, healthy_per_noise=2, slopes=(2.0, 4.0), noises=(1.5,))
"""A small grid for smoke tests (`--quick`): its figures are not the ones reported in the docs."""


@dataclass(slots=True)
class MethodScores:
    """Per-cut outcomes of one method."""

    errors: dict[float, list[float]] = field(default_factory=lambda: {f: [] for f in FRACTIONS})
    undated: dict[float, int] = field(default_factory=lambda: {f: 0 for f in FRACTIONS})
    covered: int = 0
    cuts: int = 0
    has_interval: bool = True
    healthy_with_date: int = 0
    healthy_devices: int = 0

    def summary(self) -> dict[str, Any]:
        def key(f: float) -> str:
            return str(round(f * 100))

        return {
            "error_pct": {key(f): (round(float(np.mean(v)), 2) if v else None) for f, v in self.errors.items()},
            "interval_coverage": round(self.covered / self.cuts, 3) if self.has_interval and self.cuts else None,
            "healthy_with_date": self.healthy_with_date,
            "healthy_devices": self.healthy_devices,
            "undated": {key(f): n for f, n in self.undated.items()},
            "cuts": self.cuts,
        }


def degrading_cases(spec: EvalSpec) -> Iterator[dict[str, Any]]:
    """The grid of degradation scenarios (keyword arguments of degradation_scenario, minus history)."""
    for n, (slope, noise, onset, _seed) in enumerate(
        itertools.product(spec.slopes, spec.noises, spec.onsets_days, range(spec.seeds))
    ):
        yield {
            "device_id": f"degrading_{n}",
            "slope_c_per_day": slope,
            "noise_c": noise,
            "onset_s": onset * DAY_S,
            "seed": spec.seed_base + 1000 + n,
        }


def _score_cut(
    scores: MethodScores,
    fraction: float,
    predicted: float | None,
    truth: float,
    remaining: float,
    interval: tuple[float, float] | None,
) -> None:
    scores.cuts += 1
    if predicted is None:
        scores.undated[fraction] += 1
        return
    scores.errors[fraction].append(100.0 * abs(predicted - truth) / remaining)
    if interval is not None and interval[0] <= truth <= interval[1]:
        scores.covered += 1


def evaluate(spec: EvalSpec | None = None, config: MaintenanceConfig | None = None) -> dict[str, Any]:
    """Run every scenario through the predictor and the baseline; the summary dict."""
    from gridmon.simulator.dataset import degradation_scenario, healthy_scenario

    spec = spec or EvalSpec()
    config = config or MaintenanceConfig()
    ours, base, base_all = MethodScores(), MethodScores(has_interval=False), MethodScores(has_interval=False)
    for case in degrading_cases(spec):
        to_failure = (LIMIT_C - 35.0) / case["slope_c_per_day"] * DAY_S
        history = case["onset_s"] + max(FRACTIONS) * to_failure + spec.interval_s
        readings, failure_at = degradation_scenario(
            start=START, interval_s=spec.interval_s, history_s=history, limit_c=LIMIT_C, **case
        )
        profile = DeviceProfile(case["device_id"], temperature_limit=LIMIT_C)
        onset = START + case["onset_s"]
        for fraction in FRACTIONS:
            as_of = onset + fraction * (failure_at - onset)
            remaining = failure_at - as_of
            cut = readings.loc[readings["ts"] <= as_of]
            p = predict_from_readings(cut, profile, as_of=as_of, config=config)
            interval = (p.interval[0].timestamp(), p.interval[1].timestamp()) if p.interval else None
            predicted = p.predicted_failure_date.timestamp() if p.predicted_failure_date else None
            _score_cut(ours, fraction, predicted, failure_at, remaining, interval)
            b = baseline_predict(cut, as_of=as_of)
            _score_cut(base, fraction, b.failure_at, failure_at, remaining, None)
            b = baseline_predict(cut, as_of=as_of, fetch_limit=None)
            _score_cut(base_all, fraction, b.failure_at, failure_at, remaining, None)
    healthy_history = max(HEALTHY_CUTS_DAYS) * DAY_S + spec.interval_s
    for n, (noise, _k) in enumerate(itertools.product(spec.noises, range(spec.healthy_per_noise))):
        device = f"healthy_{n}"
        readings = healthy_scenario(
            device_id=device,
            start=START,
            interval_s=spec.interval_s,
            history_s=healthy_history,
            noise_c=noise,
            seed=spec.seed_base + 5000 + n,
        )
        profile = DeviceProfile(device, temperature_limit=LIMIT_C)
        dated_ours = dated_base = dated_base_all = False
        for day in HEALTHY_CUTS_DAYS:
            as_of = START + day * DAY_S
            cut = readings.loc[readings["ts"] <= as_of]
            dated_ours |= (
                predict_from_readings(cut, profile, as_of=as_of, config=config).predicted_failure_date is not None
            )
            dated_base |= baseline_predict(cut, as_of=as_of).failure_at is not None
            dated_base_all |= baseline_predict(cut, as_of=as_of, fetch_limit=None).failure_at is not None
        for scores, dated in ((ours, dated_ours), (base, dated_base), (base_all, dated_base_all)):
            scores.healthy_devices += 1
            scores.healthy_with_date += int(dated)
    result = ours.summary()
    result["baseline"] = base.summary()
    # not part of the contract: the original's projection without its 1,000-reading fetch
    result["baseline_without_fetch_limit"] = base_all.summary()
    result["scenarios"] = {
        "degrading_devices": sum(1 for _ in degrading_cases(spec)),
        "interval_s": spec.interval_s,
        "slopes_c_per_day": list(spec.slopes),
        "noise_c": list(spec.noises),
        "onset_days": list(spec.onsets_days),
        "seeds": spec.seeds,
        "seed_base": spec.seed_base,
        "healthy_cut_days": list(HEALTHY_CUTS_DAYS),
    }
    return result
