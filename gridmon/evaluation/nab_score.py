"""NAB scoring (Lavin & Ahmad 2015, the Numenta Anomaly Benchmark), written from its published method.

Per file, rows in time order:
- A labelled window [start, end] becomes rows a..b: a = first row with ts ≥ start, b = last row
  with ts ≤ end (`window_rows`). Windows are made disjoint (`disjoint`): a window that reaches
  into the next one ends the row before it (NAB's own windows never overlap; SKAB's 60-s
  changepoint windows can).
- The first `probation` rows (NAB: min(⌊0.15·n⌋, 750)) are for learning; they count as not
  flagged.
- Detections are alert *onsets*: rows where the flags go from False to True (`onsets`).
- σ(y) = 2 / (1 + e^{5y}) − 1, and −1 for y > 3 (`sigma`).
- Inside a window only the earliest detection counts: A_TP·σ(y) with y = −(b − i + 1)/(b − a + 1)
  (−1 at the window's first row, close to 0 at its last). Later ones in the same window count
  nothing.
- A detection outside every window: A_FP·σ(y), y = (i − pb)/(pb − pa) from the preceding window
  [pa, pb] (NAB: |prevRight − i| / (prevWidth − 1)); −A_FP when no window precedes it.
- A window without a detection: −A_FN.
- Over a corpus, normalized = 100·(S − S_null)/(S_perfect − S_null) with S_null = −A_FN·W (never
  fires) and S_perfect = A_TP·σ(−1)·W (a detection at every window's first row), W windows.

Profiles (A_TP, A_FP, A_FN): standard (1, 0.11, 1), reward_low_FP (1, 0.22, 1),
reward_low_FN (1, 0.11, 2).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB application profile."""

    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(1.0, 0.11, 1.0),
    "reward_low_FP": Profile(1.0, 0.22, 1.0),
    "reward_low_FN": Profile(1.0, 0.11, 2.0),
}


@dataclass(frozen=True)
class FileScore:
    """One file under one profile: raw score and what made it."""

    raw: float
    detections: int
    first_onsets: tuple[int | None, ...]
    """Per window, the row of its earliest detection (None: missed)."""
    false_rows: tuple[int, ...]
    """Rows of the detections outside every window."""

    @property
    def windows(self) -> int:
        return len(self.first_onsets)

    @property
    def windows_detected(self) -> int:
        return sum(hit is not None for hit in self.first_onsets)

    @property
    def false_onsets(self) -> int:
        return len(self.false_rows)


def sigma(y: float) -> float:
    """NAB's scaled sigmoid: ≈1 early in a window, 0 at its end, towards −1 after it."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_rows(n: int) -> int:
    """NAB's probationary period: the first 15 % of a file, at most 750 rows."""
    return min(math.floor(0.15 * n), 750)


def window_rows(ts: np.ndarray, windows: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """Row ranges (a, b) of time windows over sorted `ts`; windows holding no row are dropped."""
    out = []
    for start, end in windows:
        a = int(np.searchsorted(ts, start, side="left"))
        b = int(np.searchsorted(ts, end, side="right")) - 1
        if a <= b:
            out.append((a, b))
    return disjoint(out)


def disjoint(windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted windows, each ending before the next one starts (empty ones dropped)."""
    ordered = sorted(windows)
    out = []
    for k, (a, b) in enumerate(ordered):
        if k + 1 < len(ordered):
            b = min(b, ordered[k + 1][0] - 1)
        if a <= b:
            out.append((a, b))
    return out


def onsets(flags: np.ndarray, probation: int) -> np.ndarray:
    """Rows at or after `probation` where the flags turn on (probation rows count as off)."""
    on = np.asarray(flags, dtype=bool).copy()
    on[: max(probation, 0)] = False
    prev = np.concatenate([[False], on[:-1]])
    return np.flatnonzero(on & ~prev)


def changes(flags: np.ndarray, probation: int) -> np.ndarray:
    """Rows at or after `probation` where the flags turn on or off (probation rows count as off)."""
    on = np.asarray(flags, dtype=bool).copy()
    on[: max(probation, 0)] = False
    prev = np.concatenate([[False], on[:-1]])
    return np.flatnonzero(on != prev)


def score_file(
    detections: Sequence[int] | np.ndarray, windows: Sequence[tuple[int, int]], profile: Profile
) -> FileScore:
    """Raw NAB score of one file's detection rows against its (disjoint, sorted) windows."""
    starts = [a for a, _ in windows]
    first: list[int | None] = [None] * len(windows)
    false_score = 0.0
    false_rows: list[int] = []
    for i in sorted(int(d) for d in detections):
        k = bisect.bisect_right(starts, i) - 1  # the last window starting at or before i
        if k >= 0 and i <= windows[k][1]:
            if first[k] is None:
                first[k] = i
            continue
        false_rows.append(i)
        if k < 0:
            false_score -= profile.a_fp
            continue
        pa, pb = windows[k]
        y = (i - pb) / (pb - pa) if pb > pa else math.inf
        false_score += profile.a_fp * sigma(y)
    true_score = 0.0
    missed = 0
    for (a, b), hit in zip(windows, first, strict=True):
        if hit is None:
            missed += 1
        else:
            true_score += profile.a_tp * sigma(-(b - hit + 1) / (b - a + 1))
    raw = true_score + false_score - profile.a_fn * missed
    return FileScore(
        raw=raw,
        detections=len(detections),
        first_onsets=tuple(first),
        false_rows=tuple(false_rows),
    )


def normalized(total_raw: float, n_windows: int, profile: Profile) -> float | None:
    """100·(S − S_null)/(S_perfect − S_null) over a corpus with `n_windows` windows."""
    if n_windows == 0:
        return None
    null = -profile.a_fn * n_windows
    perfect = profile.a_tp * sigma(-1.0) * n_windows
    return 100.0 * (total_raw - null) / (perfect - null)
