"""The one detection entry point: safety limits, statistical baseline and forest, merged.

The scan task, the evaluation command and the benchmark all call `detect` (or `run_pipeline`
when they also want per-reading scores), so what is measured is what runs.

Merging: findings of different detectors for the same (device, ts, metric) become one finding
with the highest severity; its detector field names every detector that fired, joined by `+`
in alphabetical order (`forest+statistical`), and score and description come from the finding
that set the severity (on equal severity: safety, then statistical, then forest — the most
explainable one). Forest findings carry the metric that deviates most (see `forest`), so they
merge with the per-metric findings of the other detectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from gridmon.detection import forest as forest_mod
from gridmon.detection import statistical as stat_mod
from gridmon.detection.base import DetectionResult, Finding, severity_rank
from gridmon.detection.baseline import BaselineConfig
from gridmon.detection.context import build_context
from gridmon.detection.forest import TrainedForest
from gridmon.detection.limits import SafetyLimits
from gridmon.detection.safety import check_safety
from gridmon.detection.statistical import StatisticalConfig

_PREFERENCE = {"safety": 0, "statistical": 1, "forest": 2}


@dataclass
class PipelineResult:
    """Merged findings, each detector's own result and (optionally) one score per frame row.

    `row_score[i]` belongs to frame row i: the largest of the detectors' normalised scores,
    where 1.0 means "at that detector's threshold" (statistical |z| / z_threshold, forest
    (score − median) / (threshold − median), safety 1 + relative excess, a flat-line 1.0).
    """

    findings: list[Finding]
    results: dict[str, DetectionResult] = field(default_factory=dict)
    row_score: np.ndarray | None = None


def merge_findings(groups: list[list[Finding]]) -> list[Finding]:
    """One finding per (device, ts, metric): highest severity, all detectors named."""
    merged: dict[tuple[str, float, str], Finding] = {}
    names: dict[tuple[str, float, str], set[str]] = {}
    for findings in groups:
        for f in findings:
            key = (f.device_id, f.ts, f.metric)
            current = merged.get(key)
            names.setdefault(key, set()).update(f.detector.split("+"))
            if current is None or _better(f, current):
                merged[key] = f
    out = []
    for key, f in merged.items():
        detectors = "+".join(sorted(names[key]))
        out.append(f if detectors == f.detector else replace(f, detector=detectors))
    out.sort(key=lambda f: (f.ts, f.device_id, f.metric))
    return out


def _better(candidate: Finding, current: Finding) -> bool:
    a, b = severity_rank(candidate.severity), severity_rank(current.severity)
    if a != b:
        return a > b
    return _PREFERENCE.get(candidate.detector, 9) < _PREFERENCE.get(current.detector, 9)


def run_pipeline(
    frame: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    model: TrainedForest | None = None,
    limits: Mapping[str, SafetyLimits] | None = None,
    default_limits: SafetyLimits | None = None,
    safety: bool = True,
    statistical: StatisticalConfig | None = None,
    baseline: BaselineConfig | None = None,
    forest_min_run: int = 3,
    with_scores: bool = False,
) -> PipelineResult:
    """Run every detector over `frame` (history only informs baselines) and merge."""
    stat_config = statistical or StatisticalConfig()
    results: dict[str, DetectionResult] = {}
    row_score = np.zeros(len(frame)) if with_scores else None
    if frame.empty:
        return PipelineResult(findings=[], results=results, row_score=row_score)
    if safety:
        results["safety"] = check_safety(frame, limits, default_limits)
    # The forest's features were learnt on baselines of its own configuration: use it.
    ctx = build_context(frame, history, model.baseline if model is not None else baseline)
    stat = DetectionResult(detector=stat_mod.DETECTOR, scored=len(frame))
    stat_scores = stat_mod.score_context(ctx, stat_config) if ctx.n else None
    if stat_scores is not None:
        stat.findings = stat_mod.findings_from_scores(ctx, stat_scores, stat_config)
    results["statistical"] = stat
    forest_scores = None
    if model is not None and ctx.n:
        forest_scores = forest_mod.score_context(model, ctx, forest_min_run)
        results["forest"] = DetectionResult(
            detector=forest_mod.DETECTOR,
            scored=len(frame),
            findings=forest_mod.findings_from_scores(model, ctx, forest_scores),
            info={"threshold": model.threshold},
        )
    findings = merge_findings([r.findings for r in results.values()])
    if row_score is not None and ctx.n:
        new = ctx.is_new
        pos = ctx.frame_pos[new]
        if stat_scores is not None:
            absz = np.nan_to_num(np.abs(stat_scores.z[new]), nan=0.0, posinf=0.0) / stat_config.z_threshold
            absz = np.where(stat_scores.flat[new], np.maximum(absz, 1.0), absz)
            row_score[pos] = absz.max(axis=1) if absz.shape[1] else 0.0
        if forest_scores is not None and model is not None:
            norm = np.nan_to_num(forest_mod.normalised(model, forest_scores.score[new]), nan=0.0)
            row_score[pos] = np.maximum(row_score[pos], norm)
        _safety_scores(frame, results.get("safety"), row_score)
    return PipelineResult(findings=findings, results=results, row_score=row_score)


def _safety_scores(frame: pd.DataFrame, result: DetectionResult | None, row_score: np.ndarray) -> None:
    if result is None or not result.findings:
        return
    found = pd.DataFrame(
        {"device_id": [f.device_id for f in result.findings], "ts": [f.ts for f in result.findings]}
    ).assign(score=[1.0 + f.score for f in result.findings])
    found = found.groupby(["device_id", "ts"], as_index=False)["score"].max()
    keys = pd.DataFrame({"device_id": frame["device_id"].astype(str).to_numpy(), "ts": frame["ts"].to_numpy(float)})
    joined = keys.merge(found, on=["device_id", "ts"], how="left")["score"].fillna(0.0).to_numpy()
    np.maximum(row_score, joined, out=row_score)


def detect(
    frame: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    model: TrainedForest | None = None,
    limits: Mapping[str, SafetyLimits] | None = None,
    default_limits: SafetyLimits | None = None,
    safety: bool = True,
    statistical: StatisticalConfig | None = None,
    baseline: BaselineConfig | None = None,
) -> list[Finding]:
    """All detectors over `frame`, merged: the function the scan task and `gridmon eval` call.

    `history` holds the device's readings before the frame (an hour or more is best): it feeds
    baselines, run lengths and rates of change, and no finding is reported for it. `model` is
    the active forest (None: safety and statistical only). `limits` maps device_id to that
    device's safety limits; others use `default_limits` (the global defaults when None).
    """
    return run_pipeline(
        frame,
        history=history,
        model=model,
        limits=limits,
        default_limits=default_limits,
        safety=safety,
        statistical=statistical,
        baseline=baseline,
    ).findings
