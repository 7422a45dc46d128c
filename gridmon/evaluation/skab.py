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

Every row also says where the errors lie (`where_it_errs`): false rows before the labelled
fault and after it (its aftermath), and the missed changepoint windows by kind — inside a fault
with an alarm already standing (one alarm per condition does not change state there), inside a
fault with none, at a fault's end with the alarm still on, or already off. Per file the report
lists each changepoint window's first change of flag state.

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
    where = {key: 0 for key in ERROR_KEYS}
    for item, verdict in zip(files, verdicts, strict=True):
        for key, value in error_counts(where_it_errs(item, verdict, train_rows=train_rows)).items():
            where[key] += value
    return {
        "f1": scores["f1"],
        "far_pct": 100.0 * scores["far"],
        "mar_pct": 100.0 * scores["mar"],
        "changepoint_nab_standard": normalized(raw_cp, n_windows, PROFILES["standard"]),
        **totals,
        "detected_changepoints": changepoints,
        "changepoint_windows": n_windows,
        **where,
    }


def where_it_errs(item: SkabFile, verdict: Verdict, *, train_rows: int = TRAIN_ROWS) -> dict[str, Any]:
    """Where one file's errors lie: its false rows before the first labelled row and after the
    last one (a labelled fault's aftermath), and per changepoint window its first change of flag
    state (None: missed), whether the window lies in a labelled fault (or marks its end) and
    whether an alarm stood at the row before it (a window inside a fault that an alarm already
    covers is missed unless the alarm clears or re-opens in it)."""
    flags = np.asarray(verdict.flags, dtype=bool).copy()
    flags[:train_rows] = False
    labelled = np.flatnonzero(item.anomaly[train_rows:]) + train_rows
    false_rows = flags & ~item.anomaly
    if len(labelled):
        before = int(false_rows[: labelled[0]].sum())
        after = int(false_rows[labelled[-1] + 1 :].sum())
    else:
        before, after = int(false_rows.sum()), 0
    found = changes(verdict.flags, train_rows)
    windows = []
    for start, end in item.cp_windows:
        inside = found[(found >= start) & (found <= end)]
        windows.append(
            {
                "start": start,
                "end": end,
                "in_fault": bool(item.anomaly[start]),
                "alarm_before": bool(flags[start - 1]) if start > 0 else False,
                "change": int(inside[0]) if len(inside) else None,
            }
        )
    return {"fp_before_fault": before, "fp_after_fault": after, "window_changes": windows}


ERROR_KEYS = (
    "fp_before_fault",
    "fp_after_fault",
    "cp_missed_in_fault_alarm_standing",
    "cp_missed_in_fault_no_alarm",
    "cp_missed_end_alarm_on",
    "cp_missed_end_alarm_off",
)


def error_counts(where: dict[str, Any]) -> dict[str, int]:
    """`where_it_errs` as counts: false rows before and after the fault, and the missed
    changepoint windows by kind (in a fault or at its end; an alarm standing before it or not)."""
    counts = {key: 0 for key in ERROR_KEYS}
    counts["fp_before_fault"] = where["fp_before_fault"]
    counts["fp_after_fault"] = where["fp_after_fault"]
    for window in where["window_changes"]:
        if window["change"] is not None:
            continue
        place = "in_fault" if window["in_fault"] else "end"
        if window["in_fault"]:
            state = "alarm_standing" if window["alarm_before"] else "no_alarm"
        else:
            state = "alarm_on" if window["alarm_before"] else "alarm_off"
        counts[f"cp_missed_{place}_{state}"] += 1
    return counts


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
        windows = where_it_errs(item, verdict, train_rows=train_rows)["window_changes"]
        per_file.append({"file": item.name, "rows": len(item.frame), **row, "window_changes": windows})
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
