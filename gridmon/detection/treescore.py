"""IsolationForest scoring without the per-call overhead: the scan's hot loop.

`IsolationForest.score_samples` walks every tree (`tree.apply`, compiled) and then adds, per
tree, the leaf's depth and the expected path length of the samples left in it, through three
temporary arrays and a lock. Here both per-leaf terms are folded into one weight per node once,
at training time, so scoring is one compiled walk and one gather-add per tree. The result is
the same number (`tests/test_detection_forest.py` checks equality); only the public tree
structure (`tree_.children_left/right`, `n_node_samples`, `apply`) is used.

Score convention as in scikit-learn: `score_samples` = −2^(−mean path length / c(max_samples)),
so `-scores` is in (0, 1] and higher means more anomalous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest

_EULER_GAMMA = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): expected path length of an unsuccessful search in a binary tree of n samples."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + _EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    depth = np.zeros(left.shape[0], dtype=np.float64)
    # Children always have higher ids than their parent in scikit-learn's tree builder.
    for node in range(left.shape[0]):
        if left[node] >= 0:
            depth[left[node]] = depth[node] + 1.0
            depth[right[node]] = depth[node] + 1.0
    return depth


@dataclass
class CompiledForest:
    """Per-tree node weights (edges from the root + c(samples in node)) and feature subsets."""

    weights: list[np.ndarray]
    features: list[np.ndarray | None]
    normaliser: float


def compile_forest(forest: IsolationForest) -> CompiledForest:
    """Precompute what `anomaly_scores` needs from a fitted forest."""
    n_features = int(forest.n_features_in_)
    weights, features = [], []
    for est, feats in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tree = est.tree_
        depth = _node_depths(tree.children_left, tree.children_right)
        weights.append(depth + average_path_length(tree.n_node_samples))
        feats = np.asarray(feats)
        full = feats.shape[0] == n_features and np.array_equal(feats, np.arange(n_features))
        features.append(None if full else feats)
    normaliser = len(weights) * float(average_path_length(np.array([forest.max_samples_]))[0])
    return CompiledForest(weights=weights, features=features, normaliser=normaliser)


def anomaly_scores(forest: IsolationForest, compiled: CompiledForest, x: np.ndarray) -> np.ndarray:
    """−score_samples of `x` (float32, C-contiguous): higher = more anomalous."""
    depths = np.zeros(x.shape[0], dtype=np.float64)
    for est, weight, feats in zip(forest.estimators_, compiled.weights, compiled.features, strict=True):
        subset = x if feats is None else np.ascontiguousarray(x[:, feats])
        depths += weight[est.tree_.apply(subset)]
    return np.power(2.0, -depths / max(compiled.normaliser, 1e-12))
