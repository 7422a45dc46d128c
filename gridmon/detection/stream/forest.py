"""IsolationForest on context features, flattened for the compiled kernel.

The forest sees what the streaming detector knows about a reading, not raw levels that differ
between devices: per metric the residual z of the expectation in use, the short shift
EWM(z)·√span and the spread EWM(|z|). Jointly these describe how the metrics deviate together
(a temperature above its expectation while the load is at its own is a different reading from
both being high), which no single-metric score sees.

Devices with a single metric get no forest (`MIN_METRICS`): its features would be that metric's
z, shift and spread, which the detector already scores one by one; the forest is there for
relations between metrics.

Training data are feature rows of normal readings (`out_features` of a kernel run, rows where
no alarm was open), pooled over a device group. `FlatForest` holds every tree as arrays (split
feature, split threshold, children, and per node the path length a search ending there adds:
its depth + c(samples left in it)); `ForestWalk` is the form the kernel walks (all trees a level
per step), which gives exactly `IsolationForest.score_samples` (negated): 2^(−mean path length /
c(max_samples)). It is stored as `FlatForest` and derived once per loaded forest.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest

MIN_METRICS = 2  # on one metric the forest would only repeat the dedicated scores (z, shift, spread)
N_TREES = 32  # scored on every reading in the compiled loop: 32 trees keep it to about a µs
MAX_SAMPLES = 256
MIN_ROWS = 256
_EULER_GAMMA = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): expected path length of an unsuccessful search in a binary tree of n samples."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + _EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


@dataclass
class FlatForest:
    """A fitted forest as flat arrays (see the module docstring)."""

    feature: np.ndarray  # int64 per node (−2 at leaves)
    threshold: np.ndarray  # float64 per node (compared with the feature rounded to float32, as scikit-learn does)
    left: np.ndarray  # int64 per node (−1 at leaves)
    right: np.ndarray
    weight: np.ndarray  # float64 per node
    roots: np.ndarray  # int64, tree t is nodes roots[t] .. roots[t+1]-1
    norm: float  # trees × c(max_samples)
    n_features: int

    def walk(self) -> ForestWalk:
        """The form the kernel walks (computed once per forest, not stored with it)."""
        cached = self.__dict__.get("_walk")
        if cached is None:
            cached = walk_form(self)
            self.__dict__["_walk"] = cached
        return cached

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_walk", None)
        return state

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        joblib.dump(self, buf, compress=3)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> FlatForest:
        loaded = joblib.load(io.BytesIO(blob))
        if not isinstance(loaded, cls):
            raise TypeError("not a FlatForest")
        return loaded


@dataclass(frozen=True)
class ForestWalk:
    """A forest as the kernel walks it: all trees side by side, one level per step.

    A leaf is its own left and right child and compares with +inf, so after `depth` steps (the
    depth of the deepest leaf) every walk rests on its leaf, however deep that leaf is. The walk
    is a loop with no exit that depends on the data, and the 32 walks of one reading are
    independent, so the processor overlaps them instead of waiting on one mispredicted branch after
    another: about twice as fast as walking each tree to its leaf in turn, with identical scores.
    At a leaf, `weight` is the path length the search adds (`FlatForest.weight`)."""

    feature: np.ndarray  # int64 per node (0 at leaves)
    threshold: np.ndarray  # float64 per node (+inf at leaves)
    left: np.ndarray  # int64 per node (the node itself at leaves)
    right: np.ndarray
    weight: np.ndarray
    roots: np.ndarray
    depth: int
    norm: float


def node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of every node (roots 0) of trees stored parent before children, −1 children at leaves."""
    depth = np.zeros(left.shape[0], dtype=np.int64)
    for i in np.flatnonzero(left >= 0):  # children have higher ids than their parent
        depth[left[i]] = depth[right[i]] = depth[i] + 1
    return depth


def walk_form(forest: FlatForest) -> ForestWalk:
    """`forest` in the form of `ForestWalk`."""
    n = forest.left.shape[0]
    leaf = forest.left < 0
    node = np.arange(n, dtype=np.int64)
    depth = node_depths(forest.left, forest.right)
    return ForestWalk(
        feature=np.where(leaf, 0, forest.feature).astype(np.int64),
        threshold=np.where(leaf, np.inf, forest.threshold).astype(np.float64),
        left=np.where(leaf, node, forest.left).astype(np.int64),
        right=np.where(leaf, node, forest.right).astype(np.int64),
        weight=forest.weight.astype(np.float64),
        roots=forest.roots.astype(np.int64),
        depth=int(depth.max()) if n else 0,
        norm=float(forest.norm),
    )


class InsufficientData(ValueError):
    """Too few normal feature rows to train a forest."""


def train_flat_forest(rows: np.ndarray, *, random_state: int = 0) -> FlatForest:
    """Fit an IsolationForest on feature rows (finite rows only) and flatten it."""
    x = np.asarray(rows, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < MIN_ROWS:
        raise InsufficientData(f"{x.shape[0]} normal rows, need {MIN_ROWS}")
    model = IsolationForest(n_estimators=N_TREES, max_samples=min(MAX_SAMPLES, x.shape[0]), random_state=random_state)
    model.fit(x.astype(np.float32))
    return flatten(model)


def flatten(model: IsolationForest) -> FlatForest:
    """The stored form (`FlatForest`) of a fitted scikit-learn forest (all features per tree)."""
    feats, thrs, lefts, rights, weights, roots = [], [], [], [], [], [0]
    for est, used in zip(model.estimators_, model.estimators_features_, strict=True):
        tree = est.tree_
        left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
        depth = node_depths(left, right)
        offset = roots[-1]
        used = np.asarray(used)
        feature = np.where(left >= 0, used[np.maximum(tree.feature, 0)], -2)
        feats.append(feature.astype(np.int64))
        thrs.append(tree.threshold.astype(np.float64))
        lefts.append(np.where(left >= 0, left + offset, -1))
        rights.append(np.where(right >= 0, right + offset, -1))
        weights.append(depth + average_path_length(tree.n_node_samples))
        roots.append(offset + left.shape[0])
    norm = len(model.estimators_) * float(average_path_length(np.array([model.max_samples_]))[0])
    return FlatForest(
        feature=np.concatenate(feats),
        threshold=np.concatenate(thrs),
        left=np.concatenate(lefts),
        right=np.concatenate(rights),
        weight=np.concatenate(weights),
        roots=np.asarray(roots, dtype=np.int64),
        norm=norm,
        n_features=int(model.n_features_in_),
    )


EMPTY = FlatForest(
    feature=np.zeros(1, dtype=np.int64),
    threshold=np.zeros(1),
    left=np.full(1, -1, dtype=np.int64),
    right=np.full(1, -1, dtype=np.int64),
    weight=np.zeros(1),
    roots=np.zeros(1, dtype=np.int64),
    norm=0.0,
    n_features=0,
)
"""No forest: the kernel skips the forest test when `norm` is 0."""


@dataclass
class ForestSet:
    """The forests of one model version, one per device group (`group_key`)."""

    forests: dict[str, FlatForest]
    params: dict[str, float]

    def for_group(self, key: str, n_features: int) -> FlatForest | None:
        if n_features < 3 * MIN_METRICS:
            return None
        forest = self.forests.get(key)
        return forest if forest is not None and forest.n_features == n_features else None


def group_key(kind: str | None, metrics: tuple[str, ...] | list[str]) -> str:
    """Devices of one kind (profile) and metric set share a forest: `transformer|current,temperature`."""
    return f"{kind or 'default'}|{','.join(metrics)}"
