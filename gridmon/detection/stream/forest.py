"""IsolationForest on the relations between a device's metrics, flattened for the compiled kernel.

The univariate scores watch each metric against its own expectation. The forest is there for what
none of them sees: metrics that each stay inside their own band but no longer move together (a
temperature at its expected value while the load it follows has dropped; one of two currents that
always rose together now falling). Its inputs are *relation residuals*: for each metric, how far
its residual z (deviation from the expectation in use, seasonal where there is one) and its short
shift EWM(z)·√span (the rate at which it is moving away) are from what the other metrics' values
predict. With P the inverse of their (ridge-regularised) covariance over the training rows, the
residual of metric j is (P·(x − mean))_j / √P_jj: the deviation of x_j from its regression on the
others, in units of that regression's error (a conditional z). Normal readings keep these small;
a broken relation makes one or two of them large while every plain z is ordinary.

Why not the plain z, shift and spread, as the forest had until this wave: an isolation tree splits
on a feature chosen at random, and a relation break is out of range in none of them, so it was
isolated no sooner than a normal reading (on a generated break the forest's median score rose from
0.443 to 0.465: it never alarmed). On relation residuals the break is out of range in the feature
that carries it.

Devices with a single metric get no forest (`MIN_METRICS`): a metric has no relation.

Training data are feature rows of normal readings (`out_features` of a kernel run: z, shift,
spread per metric, rows where no alarm was open), pooled over a device group. `train_flat_forest`
fits the relation transform on them (`relation`, `relation_mean`), then the forest on the
transformed rows. `FlatForest` holds every tree as arrays (split feature, split threshold,
children, and per node the path length a search ending there adds: its depth + c(samples left in
it)); `ForestWalk` is the form the kernel walks (all trees a level per step), which gives exactly
`IsolationForest.score_samples` (negated): 2^(−mean path length / c(max_samples)). It is stored as
`FlatForest` and derived once per loaded forest. A stored forest of the earlier kind (no relation
transform) is not used: the next retrain replaces it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest

MIN_METRICS = 2  # a single metric has no relation to watch
N_TREES = 32  # scored on every reading in the compiled loop: 32 trees keep it to about a µs
MAX_SAMPLES = 256
# Rows a forest needs: an evaluation's 400 training rows leave 200 once the scales have settled
# (`training.SETTLE_READINGS`), a tree of 128 samples is 7 levels deep against 8 for 256
MIN_ROWS = 128
BASE_FEATURES = 3  # per metric in `out_features`: z, short shift, spread
RELATION_BLOCKS = 2  # relation residuals of z and of the short shift (columns 0 and 1 of each metric's three)
RIDGE = 0.05  # added to the covariance's diagonal, as a share of it: a near-collinear pair stays invertible
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
    n_features: int  # the forest's inputs: RELATION_BLOCKS × metrics
    # (blocks, k, k) and (blocks, k): relation residual = relation[b] @ (x_b − relation_mean[b]);
    # None in forests stored before relation residuals (they are not used)
    relation: np.ndarray | None = None
    relation_mean: np.ndarray | None = None

    @property
    def metrics(self) -> int:
        """Metrics of the devices this forest serves (0: a forest of the earlier kind, not usable)."""
        return 0 if self.relation is None else int(self.relation.shape[1])

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
    relation: np.ndarray  # (blocks, k, k), as in `FlatForest`
    relation_mean: np.ndarray  # (blocks, k)


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
        relation=np.ascontiguousarray(_or_empty(forest.relation, 3), dtype=np.float64),
        relation_mean=np.ascontiguousarray(_or_empty(forest.relation_mean, 2), dtype=np.float64),
    )


def _or_empty(a: np.ndarray | None, ndim: int) -> np.ndarray:
    return np.zeros((RELATION_BLOCKS,) + (1,) * (ndim - 1)) if a is None else a


class InsufficientData(ValueError):
    """Too few normal feature rows to train a forest."""


def fit_relation(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The relation transform of base feature rows (n × BASE_FEATURES·k): per block (z, shift)
    the matrix diag(P)^(−1/2)·P, P the inverse of the ridge-regularised covariance, and the mean."""
    k = rows.shape[1] // BASE_FEATURES
    mats = np.zeros((RELATION_BLOCKS, k, k))
    means = np.zeros((RELATION_BLOCKS, k))
    for b in range(RELATION_BLOCKS):
        block = rows[:, b::BASE_FEATURES]
        means[b] = block.mean(axis=0)
        cov = np.atleast_2d(np.cov(block, rowvar=False))
        var = np.diag(cov)
        moved = var > 1e-12
        # a metric that never moved in training (variance 0) gets unit variance: any move is news
        cov = cov + np.diag(np.where(moved, RIDGE * var, 1.0 + RIDGE))
        prec = np.linalg.inv(cov)
        mats[b] = prec / np.sqrt(np.diag(prec))[:, None]
    return mats, means


def relation_features(rows: np.ndarray, relation: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The forest's inputs for base feature rows: relation residuals, block after block (as the kernel)."""
    return np.hstack(
        [(rows[:, b::BASE_FEATURES] - mean[b]) @ relation[b].T for b in range(relation.shape[0])]
    )


def train_flat_forest(rows: np.ndarray, *, random_state: int = 0) -> FlatForest:
    """Fit the relation transform and an IsolationForest on base feature rows (finite rows only),
    and flatten them."""
    x = np.asarray(rows, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < MIN_ROWS:
        raise InsufficientData(f"{x.shape[0]} normal rows, need {MIN_ROWS}")
    relation, mean = fit_relation(x)
    inputs = relation_features(x, relation, mean)
    model = IsolationForest(n_estimators=N_TREES, max_samples=min(MAX_SAMPLES, x.shape[0]), random_state=random_state)
    model.fit(inputs.astype(np.float32))
    flat = flatten(model)
    flat.relation, flat.relation_mean = relation, mean
    return flat


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

    def for_group(self, key: str, metrics: int) -> FlatForest | None:
        """The group's forest for a device of `metrics` metrics (None: no usable one)."""
        if metrics < MIN_METRICS:
            return None
        forest = self.forests.get(key)
        return forest if forest is not None and forest.metrics == metrics else None


def group_key(kind: str | None, metrics: tuple[str, ...] | list[str]) -> str:
    """Devices of one kind (profile) and metric set share a forest: `transformer|current,temperature`."""
    return f"{kind or 'default'}|{','.join(metrics)}"
