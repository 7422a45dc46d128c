"""Multivariate IsolationForest: training with a calibrated threshold, scoring, persistence.

The original design fit `IsolationForest(contamination=0.1)`, which flags the top 10 % of every
batch by construction. Here the threshold is a quantile of anomaly scores, chosen so that a
configurable fraction of normal readings (`target_false_alarm_rate`, default 0.1 %) would
exceed it. The scores used for that quantile are out-of-sample: the training rows are split in
two halves, a forest fit on each half scores the other, and the model that is kept is fit on
all rows. (Scoring a forest's own training rows under-estimates their scores, badly so on
small training sets where each row sits in most trees.)

Training rows that the robust baseline already calls abnormal (|z| > `trim_z` in any metric)
are left out, so that faults in the training window are not learnt as normal. Training data
larger than `max_train_rows` is subsampled at random (seeded): each tree only
ever sees `max_samples` rows, so a 200,000-row sample describes normal operation as well as
a million rows and keeps a retrain on 1 M readings within seconds.

Scores are `-score_samples` (higher = more anomalous, in (0, 1]). A reading is reported when
its score exceeds the threshold for `min_run` consecutive readings of the device (a single
extreme reading is left to the statistical and safety detectors). Severity by the normalised score
(score − median) / (threshold − median): ≤ 1.25 low, ≤ 1.5 medium, ≤ 2 high, beyond critical.

A multivariate finding is attributed to the metric whose robust z (deviation from the device
baseline in units of its scale) is largest at that reading; before a device has a baseline the
metric is `"multivariate"` and the value is the score.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from gridmon.detection.base import SEVERITIES, DetectionResult, Finding
from gridmon.detection.baseline import MAD_TO_SIGMA, BaselineConfig
from gridmon.detection.context import Context, build_context
from gridmon.detection.features import align, build_features
from gridmon.detection.runs import confirm, needs_lookback
from gridmon.detection.treescore import CompiledForest, anomaly_scores, compile_forest

log = logging.getLogger(__name__)

DETECTOR = "forest"
MIN_TRAINING_SAMPLES = 256
MODEL_FORMAT = 1
SEVERITY_BANDS = (1.25, 1.5, 2.0)
_SEVERITIES = np.array(SEVERITIES)


class InsufficientData(ValueError):
    """Too few readings to train a forest; the previous model should stay in use."""


@dataclass
class TrainedForest:
    """A fitted forest with everything needed to score new readings the same way."""

    estimator: IsolationForest
    feature_names: list[str]
    threshold: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    trained_from: float | None = None
    trained_to: float | None = None
    fill_values: np.ndarray = field(default_factory=lambda: np.empty(0))
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    compiled: CompiledForest | None = None

    def anomaly_scores(self, x: np.ndarray) -> np.ndarray:
        """−score_samples of an aligned feature matrix (higher = more anomalous)."""
        if self.compiled is None:
            self.compiled = compile_forest(self.estimator)
        return anomaly_scores(self.estimator, self.compiled, x)

    @property
    def window(self) -> tuple[float | None, float | None]:
        """(first, last) reading time of the training data, UTC epoch seconds."""
        return self.trained_from, self.trained_to


def _fit(x: np.ndarray, n_estimators: int, max_samples: int, random_state: int) -> IsolationForest:
    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, x.shape[0]),
        contamination="auto",
        random_state=random_state,
    )
    return forest.fit(x)


def train_forest(
    frame: pd.DataFrame,
    *,
    target_false_alarm_rate: float = 0.001,
    random_state: int = 0,
    n_estimators: int = 100,
    max_samples: int = 256,
    max_train_rows: int = 200_000,
    trim_z: float | None = 4.0,
    history: pd.DataFrame | None = None,
    baseline: BaselineConfig | None = None,
) -> TrainedForest:
    """Fit a forest on `frame` (+ `history` for baselines) and calibrate its threshold."""
    if not 0.0 < target_false_alarm_rate < 1.0:
        raise ValueError("target_false_alarm_rate must be between 0 and 1")
    baseline = baseline or BaselineConfig()
    ctx = build_context(frame, history, baseline) if not frame.empty else None
    n_available = 0 if ctx is None else int(ctx.is_new.sum())
    if ctx is None or n_available < MIN_TRAINING_SAMPLES:
        raise InsufficientData(
            f"{n_available} readings to train on; at least {MIN_TRAINING_SAMPLES} are needed "
            "(keep the previous model until more data has arrived)"
        )
    rows = _normal_rows(ctx, trim_z)
    n_kept = int(rows.size)
    rng = np.random.default_rng(random_state)
    if rows.size > max_train_rows:
        rows = np.sort(rng.choice(rows, size=max_train_rows, replace=False))
    names, raw = build_features(ctx, rows)
    with np.errstate(all="ignore"):
        fill = np.nanmedian(np.where(np.isfinite(raw), raw, np.nan), axis=0)
    fill = np.nan_to_num(fill, nan=0.0)
    x = align(names, raw, names, fill)

    # Out-of-sample calibration scores from a two-fold cross-fit (see module docstring).
    half = rng.permutation(x.shape[0]) < x.shape[0] // 2
    calib = np.empty(x.shape[0])
    for fold, part in enumerate((half, ~half)):
        other = _fit(x[~part], n_estimators, max_samples, random_state + 1 + fold)
        calib[part] = anomaly_scores(other, compile_forest(other), np.ascontiguousarray(x[part]))
    estimator = _fit(x, n_estimators, max_samples, random_state)
    threshold = float(np.quantile(calib, 1.0 - target_false_alarm_rate))
    quantiles = {f"p{q:g}": float(np.quantile(calib, q / 100.0)) for q in (50, 90, 99, 99.9)}
    metrics = {
        "n_samples": int(x.shape[0]),
        "n_available": n_available,
        "n_trimmed": n_available - n_kept,
        "score_quantiles": quantiles,
        "score_max": float(calib.max()),
        "calibrated_far": float(np.mean(calib > threshold)),
        "threshold": threshold,
    }
    params = {
        "format": MODEL_FORMAT,
        "n_estimators": n_estimators,
        "max_samples": min(max_samples, x.shape[0]),
        "random_state": random_state,
        "target_false_alarm_rate": target_false_alarm_rate,
        "max_train_rows": max_train_rows,
        "trim_z": trim_z,
        "baseline": asdict(baseline),
    }
    new_ts = ctx.ts[ctx.is_new]
    log.info("forest trained on %d readings, threshold %.4f", x.shape[0], threshold)
    return TrainedForest(
        estimator=estimator,
        feature_names=names,
        threshold=threshold,
        params=params,
        metrics=metrics,
        trained_from=float(new_ts.min()),
        trained_to=float(new_ts.max()),
        fill_values=fill,
        baseline=baseline,
        compiled=compile_forest(estimator),
    )


def _normal_rows(ctx: Context, trim_z: float | None) -> np.ndarray:
    """Frame rows to learn from: those the robust baseline does not already call abnormal.

    Training data is whatever the last day held, faults included, and a forest that learns a
    fault as normal stops seeing it. Rows with any |z| above `trim_z` are left out (rows of
    devices without a baseline yet are kept); when too few rows would remain, all are used.
    """
    new = ctx.is_new
    if trim_z is None:
        return np.flatnonzero(new)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs((ctx.values - ctx.center) / ctx.scale)
    keep = new & ~np.any(z > trim_z, axis=1)
    # A slow creep (a degrading transformer) stays within |z| of its own moving baseline; it is
    # recognisable by its trend, far outside the spread of trends across the training data.
    trend = np.where(new[:, None], ctx.trend, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Training windows shorter than the trend lag have no trend at all (all NaN): fine.
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(trend, axis=0)
        spread = MAD_TO_SIGMA * np.nanmedian(np.abs(trend - centre), axis=0)
        keep &= ~np.any(np.abs(trend - centre) > trim_z * spread, axis=1)
    if keep.sum() < MIN_TRAINING_SAMPLES:
        return np.flatnonzero(new)
    return np.flatnonzero(keep)


@dataclass
class ForestScores:
    """Per-row scores in context order (NaN where a row was not scored) and the verdict."""

    score: np.ndarray
    confirmed: np.ndarray


def score_context(model: TrainedForest, ctx: Context, min_run: int = 3) -> ForestScores:
    """Score the frame rows of `ctx` (plus the few history rows that runs need)."""
    score = np.full(ctx.n, np.nan)
    if ctx.n == 0:
        return ForestScores(score=score, confirmed=np.zeros(0, dtype=bool))
    rows = np.flatnonzero(needs_lookback(ctx.is_new, ctx.same_prev, min_run - 1))
    names, raw = build_features(ctx, rows)
    x = align(names, raw, model.feature_names, model.fill_values)
    score[rows] = model.anomaly_scores(x)
    valid = np.nan_to_num(score, nan=-np.inf)
    flagged = valid > model.threshold
    # No single-reading verdicts: one extreme reading is the statistical and safety detectors'
    # call; the forest speaks about patterns that persist.
    never = np.zeros_like(flagged)
    return ForestScores(score=score, confirmed=confirm(flagged, never, ctx.same_prev, min_run))


def normalised(model: TrainedForest, score: np.ndarray) -> np.ndarray:
    """(score − training median) / (threshold − training median): 1.0 at the threshold."""
    median = float(model.metrics["score_quantiles"]["p50"])
    return (score - median) / max(model.threshold - median, 1e-9)


def findings_from_scores(model: TrainedForest, ctx: Context, scores: ForestScores) -> list[Finding]:
    """Findings for confirmed frame rows, attributed to their most deviating metric."""
    rows = np.flatnonzero(scores.confirmed & ctx.is_new)
    if rows.size == 0:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs((ctx.values[rows] - ctx.center[rows]) / ctx.scale[rows])
    z = np.nan_to_num(z, nan=-1.0)
    best = np.argmax(z, axis=1)
    norm = normalised(model, scores.score[rows])
    severities = _SEVERITIES[np.searchsorted(np.asarray(SEVERITY_BANDS), norm, side="left")]
    out = []
    for i, r in enumerate(rows):
        has_baseline = z[i, best[i]] >= 0
        metric = ctx.metrics[best[i]] if has_baseline else "multivariate"
        value = float(ctx.values[r, best[i]]) if has_baseline else float(scores.score[r])
        detail = f"; most deviating: {metric} ({z[i, best[i]]:.1f} sigma)" if has_baseline else ""
        out.append(
            Finding(
                device_id=ctx.device_of(r),
                ts=float(ctx.ts[r]),
                metric=metric,
                value=value,
                severity=str(severities[i]),
                detector=DETECTOR,
                score=float(scores.score[r]),
                description=f"multivariate anomaly score {scores.score[r]:.3f} > {model.threshold:.3f}{detail}",
            )
        )
    return out


def score_forest(
    model: TrainedForest, frame: pd.DataFrame, history: pd.DataFrame | None = None, *, min_run: int = 3
) -> DetectionResult:
    """Findings of the forest for the frame's readings."""
    result = DetectionResult(detector=DETECTOR, scored=len(frame))
    if frame.empty:
        return result
    ctx = build_context(frame, history, model.baseline)
    scores = score_context(model, ctx, min_run)
    result.findings = findings_from_scores(model, ctx, scores)
    result.info["threshold"] = model.threshold
    return result


def save_model(model: TrainedForest, path: str | Path) -> Path:
    """Write the model as a joblib artifact (parent directories created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, target)
    return target


def load_model(path: str | Path) -> TrainedForest:
    """Read a model written by `save_model`."""
    model = joblib.load(Path(path))
    if not isinstance(model, TrainedForest):
        raise TypeError(f"{path} does not hold a TrainedForest")
    return model
