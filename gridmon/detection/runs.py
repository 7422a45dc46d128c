"""Run lengths over readings sorted by (device, ts), vectorised.

Detectors confirm a suspicion only when it persists for a few consecutive readings (or is
strong on its own): single noisy readings are what make operators stop reading alerts. Every
rule here is causal — a reading's verdict depends only on it and the readings before it — so a
frame scored in one go and the same readings scored scan by scan give the same findings.
"""

from __future__ import annotations

import numpy as np


def run_position(flag: np.ndarray, same_prev: np.ndarray) -> np.ndarray:
    """0-based position of each flagged row within its run of consecutive flagged rows.

    `flag` is (n,) or (n, m); runs break where the device changes (`same_prev` False).
    Unflagged rows get -1.
    """
    flag = np.asarray(flag, dtype=bool)
    two_d = flag.ndim == 2
    f = flag if two_d else flag[:, None]
    n = f.shape[0]
    prev = np.zeros_like(f)
    if n > 1:
        prev[1:] = f[:-1] & same_prev[1:, None]
    starts = f & ~prev
    idx = np.arange(n, dtype=np.int64)[:, None]
    start_idx = np.maximum.accumulate(np.where(starts, idx, 0), axis=0)
    pos = np.where(f, idx - start_idx, -1)
    return pos if two_d else pos[:, 0]


def confirm(flag: np.ndarray, strong: np.ndarray, same_prev: np.ndarray, min_run: int) -> np.ndarray:
    """Flagged rows that are strong alone or at least the `min_run`-th of a run."""
    pos = run_position(flag, same_prev)
    return (flag & strong) | (pos >= max(min_run, 1) - 1)


def needs_lookback(is_new: np.ndarray, same_prev: np.ndarray, lookback: int) -> np.ndarray:
    """Rows that are new, or among the `lookback` rows of the same device just before a new row."""
    need = is_new.copy()
    nxt = is_new.copy()
    for _ in range(max(lookback, 0)):
        # Shift "a new row follows" one step back, only across rows of the same device.
        shifted = np.zeros_like(nxt)
        shifted[:-1] = nxt[1:] & same_prev[1:]
        nxt = shifted
        need |= nxt
    return need
