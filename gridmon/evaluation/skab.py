"""`gridmon eval skab`: SKAB's leaderboard protocol, point-wise and changepoint, from the same flags.

Files: every `*.csv` under DIR (recursively) that has an `anomaly` column — `anomaly-free.csv`
has none and is not scored. `;`-separated, time column `datetime`, all 8 sensor channels
(Voltage, Current and Temperature under the grid's metric names, the others under their own;
the grid's safety limits are off: a water pump is not a grid device). Each file is one device.

Per file, the first `TRAIN_ROWS` (400) rows train the detector (through
`gridmon.evaluation.adapter.detect_series`) and the rest is scored:
- point-wise: TP, FP, FN, TN of the flags against `anomaly`, summed over files;
  F1 = TP / (TP + (FP + FN)/2), FAR = FP / (FP + TN), MAR = FN / (FN + TP);
- changepoint: NAB's standard profile (`gridmon.evaluation.nab_score`) with one window per row
  where `changepoint` is 1 (after the training rows): [that row, the last row within
  `CP_WINDOW_S` (60 s) after it], made disjoint. The detected changepoints are the rows where
  the flag state changes (on or off), as SKAB derives changepoints from outlier predictions.
  Normalized over all files.

The null and flag-everything detectors are scored the same way in the same run; `ANCHORS` are
SKAB's published leaderboard (all 34 files), for reading the figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridmon.evaluation.adapter import Verdict, detect_series, everything_verdict, null_verdict
from gridmon.evaluation.nab import to_epoch
from gridmon.evaluation.nab_score import PROFILES, changes, disjoint, normalized, score_file
from gridmon.evaluation.scoring import pointwise_counts, pointwise_scores

log = logging.getLogger(__name__)

TRAIN_ROWS = 400
CP_WINDOW_S = 60.0
TIME_COL = "datetime"
LABEL_COLS = ("anomaly", "changepoint")
METRIC_NAMES = {"Voltage": "voltage", "Current": "current", "Temperature": "temperature"}

# SKAB leaderboard (waico/SKAB README): outlier detection F1 / FAR % / MAR %, and changepoint
# detection NAB (standard).
ANCHORS: dict[str, Any] = {
    "outlier": {
        "Conv-AE": {"f1": 0.78, "far_pct": 13.55, "mar_pct": 28.02},
        "MSET": {"f1": 0.78, "far_pct": 39.73, "mar_pct": 14.13},
        "T2+Q": {"f1": 0.76, "far_pct": 26.62, "mar_pct": 24.92},
        "T2": {"f1": 0.66, "far_pct": 19.21, "mar_pct": 42.6},
        "Isolation Forest": {"f1": 0.29, "far_pct": 2.56, "mar_pct": 82.89},
    },
    "changepoint_nab_standard": {"MSCRED": 32.4, "Isolation Forest": 26.2, "Conv-AE": 23.6},
}


@dataclass
class SkabFile:
    """One labelled file: its readings as a frame, labels and changepoint windows (rows)."""

    name: str
    frame: pd.DataFrame
    anomaly: np.ndarray
    cp_windows: list[tuple[int, int]]


def cp_windows(ts: np.ndarray, changepoint: np.ndarray, *, start: int, width_s: float) -> list[tuple[int, int]]:
    """[row, last row with ts ≤ ts[row] + width_s] for each changepoint row ≥ `start`, disjoint."""
    rows = np.flatnonzero(changepoint)
    rows = rows[rows >= start]
    ends = np.searchsorted(ts, ts[rows] + width_s, side="right") - 1
    return disjoint([(int(a), int(b)) for a, b in zip(rows, ends, strict=True)])


def load_file(path: Path, name: str, *, train_rows: int = TRAIN_ROWS) -> SkabFile | None:
    """One SKAB file, or None when it has no `anomaly` column (not a labelled file)."""
    raw = pd.read_csv(path, sep=";")
    if "anomaly" not in raw.columns:
        return None
    if TIME_COL not in raw.columns:
        raise ValueError(f"{path}: no column {TIME_COL!r}")
    ts = to_epoch(raw[TIME_COL])
    order = np.argsort(ts, kind="stable")
    raw = raw.iloc[order].reset_index(drop=True)
    ts = ts[order]
    channels = [c for c in raw.columns if c not in (TIME_COL, *LABEL_COLS)]
    frame = pd.DataFrame({"ts": ts})
    for column in channels:
        frame[METRIC_NAMES.get(column, column)] = pd.to_numeric(raw[column], errors="coerce").astype(float)
    anomaly = pd.to_numeric(raw["anomaly"], errors="coerce").fillna(0).to_numpy() > 0
    cp = (
        pd.to_numeric(raw["changepoint"], errors="coerce").fillna(0).to_numpy() > 0
        if "changepoint" in raw.columns
        else np.zeros(len(raw), dtype=bool)
    )
    return SkabFile(name, frame, anomaly, cp_windows(ts, cp, start=train_rows, width_s=CP_WINDOW_S))


def load_skab(data_dir: Path, *, train_rows: int = TRAIN_ROWS) -> list[SkabFile]:
    """Every labelled `*.csv` under `data_dir`, sorted by path."""
    files = []
    for path in sorted(data_dir.rglob("*.csv")):
        name = path.relative_to(data_dir).with_suffix("").as_posix()
        item = load_file(path, name, train_rows=train_rows)
        if item is None:
            log.info("%s: no 'anomaly' column, not scored", path)
            continue
        files.append(item)
    if not files:
        raise ValueError(f"{data_dir}: no labelled *.csv (with an 'anomaly' column)")
    return files


def score_rows(files: list[SkabFile], verdicts: list[Verdict], *, train_rows: int = TRAIN_ROWS) -> dict[str, Any]:
    """Point-wise figures and the changepoint score of one detector's flags over the files."""
    totals = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    raw_cp = 0.0
    n_windows = 0
    changepoints = 0
    for item, verdict in zip(files, verdicts, strict=True):
        counts = pointwise_counts(verdict.flags[train_rows:], item.anomaly[train_rows:])
        for key in totals:
            totals[key] += counts[key]
        found = changes(verdict.flags, train_rows)
        raw_cp += score_file(found, item.cp_windows, PROFILES["standard"]).raw
        n_windows += len(item.cp_windows)
        changepoints += len(found)
    scores = pointwise_scores(totals)
    return {
        "f1": scores["f1"],
        "far_pct": 100.0 * scores["far"],
        "mar_pct": 100.0 * scores["mar"],
        "changepoint_nab_standard": normalized(raw_cp, n_windows, PROFILES["standard"]),
        **totals,
        "detected_changepoints": changepoints,
        "changepoint_windows": n_windows,
    }


def _gridmon(item: SkabFile, train_rows: int) -> Verdict:
    return detect_series(item.frame, train_rows, safety=False)


def evaluate_skab(
    data_dir: Path,
    *,
    train_rows: int = TRAIN_ROWS,
    detector: Callable[[SkabFile, int], Verdict] = _gridmon,
) -> dict[str, Any]:
    """The report of `gridmon eval skab` (module docstring)."""
    files = load_skab(data_dir, train_rows=train_rows)
    verdicts = [detector(item, train_rows) for item in files]
    per_file = []
    for item, verdict in zip(files, verdicts, strict=True):
        row = score_rows([item], [verdict], train_rows=train_rows)
        per_file.append({"file": item.name, "rows": len(item.frame), **row})
    sizes = [len(item.frame) for item in files]
    return {
        "rows": {
            "gridmon": score_rows(files, verdicts, train_rows=train_rows),
            "null": score_rows(files, [null_verdict(n) for n in sizes], train_rows=train_rows),
            "flag_everything": score_rows(
                files, [everything_verdict(n, train_rows) for n in sizes], train_rows=train_rows
            ),
        },
        "anchors": ANCHORS,
        "corpus": {"files": len(files), "rows": sum(sizes), "train_rows": train_rows},
        "files": per_file,
    }
