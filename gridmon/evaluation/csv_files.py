"""`gridmon eval --csv`: score labelled CSV files with the detector under evaluation.

Each input file is one device (its id is the file's parent folder and name, e.g. `valve1/3`),
read with `load_csv`: the time column parsed to epoch seconds, rows sorted by time, the mapped
columns as metrics (`--map name=COLUMN,…`). Per file, the first `train_rows` rows are the
training part — the detector (`gridmon.evaluation.adapter.detect_series`) learns from them —
and the rest is scored; counts are summed over files:
- point-wise TP/FP/FN/TN of the flags against the label column (F1, FAR, MAR);
- events: labelled stretches against the device's alarms (episodes of flagged readings closer
  than the episode gap), `gridmon.evaluation.scoring.event_scores`.
The null and flag-everything detectors are scored the same way (`rows`). Files without labels:
`gridmon.evaluation.alarm_rate`.

`--out` writes `timestamp,score,flag` per input row: the adapter's score (1.0 at a detector's
threshold) and flag; training rows have empty cells.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridmon.domain.units import DAY_S
from gridmon.evaluation.adapter import Verdict, detect_series, everything_verdict, null_verdict
from gridmon.evaluation.scoring import (
    alarms_from_flags,
    event_scores,
    label_segments,
    pointwise_counts,
    pointwise_scores,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CsvSetup:
    """How to read and score the files."""

    time_col: str
    mapping: Mapping[str, str]
    label_col: str | None = "label"
    """None: the files have no labels (alarm rate only)."""
    sep: str = ","
    train_rows: int = 400
    safety: bool = True
    tolerance_s: float = 30.0
    episode_gap_s: float = 120.0
    out: Path | None = None


@dataclass
class CsvFile:
    """One file as one device's series (sorted by time), with its labels when it has them."""

    device_id: str
    frame: pd.DataFrame
    label: np.ndarray | None
    raw_time: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))


def parse_mapping(text: str) -> dict[str, str]:
    """`voltage=COL,current=COL,name=COL` → {metric name: column}."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, column = part.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise ValueError(f"bad --map entry {part!r}: expected name=COLUMN")
        mapping[name.strip()] = column.strip()
    if not mapping:
        raise ValueError("--map needs at least one name=COLUMN")
    return mapping


def epoch_seconds(column: pd.Series) -> np.ndarray:
    """Epoch seconds of a time column: numbers (seconds, or milliseconds by size) or text (UTC)."""
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=float)
        # Epoch milliseconds are recognisable by size (1e11 s is the year 5138).
        return values / 1000.0 if np.nanmedian(np.abs(values)) > 1e11 else values
    parsed = pd.to_datetime(column, utc=True, format="mixed")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def device_name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def load_csv(path: Path, setup: CsvSetup) -> CsvFile:
    """Read one file: map its columns to metrics, parse time (and labels), sort by time."""
    raw = pd.read_csv(path, sep=setup.sep)
    wanted = [setup.time_col, *setup.mapping.values(), *([setup.label_col] if setup.label_col else [])]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {', '.join(missing)}; found {', '.join(map(str, raw.columns))}")
    ts = epoch_seconds(raw[setup.time_col])
    order = np.argsort(ts, kind="stable")
    raw = raw.iloc[order].reset_index(drop=True)
    device = device_name(path)
    frame = pd.DataFrame({"device_id": device, "ts": ts[order]})
    for name, column in setup.mapping.items():
        frame[name] = pd.to_numeric(raw[column], errors="coerce").astype(float)
    label = None
    if setup.label_col:
        label = pd.to_numeric(raw[setup.label_col], errors="coerce").fillna(0).to_numpy() > 0
    return CsvFile(device_id=device, frame=frame, label=label, raw_time=raw[setup.time_col])


def verdicts(files: Sequence[CsvFile], setup: CsvSetup) -> list[Verdict]:
    """The adapter's verdict for every file (and the `--out` score files)."""
    out = []
    for data in files:
        verdict = detect_series(data.frame, setup.train_rows, safety=setup.safety)
        out.append(verdict)
        if setup.out is not None:
            _write_scores(_out_path(setup.out, data.device_id, len(files)), data, setup.train_rows, verdict)
    return out


def score_labelled(files: Sequence[CsvFile], found: Sequence[Verdict], setup: CsvSetup) -> dict[str, Any]:
    """Point-wise and event figures of one detector's verdicts, summed over the files."""
    totals = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    alarms, truth = [], []
    days = 0.0
    for data, verdict in zip(files, found, strict=True):
        n_train = min(setup.train_rows, len(data.frame))
        ts = data.frame["ts"].to_numpy(dtype=float)[n_train:]
        label = data.label[n_train:] if data.label is not None else np.zeros(len(ts), dtype=bool)
        counts = pointwise_counts(verdict.flags[n_train:], label)
        for key in totals:
            totals[key] += counts[key]
        alarms += alarms_from_flags(data.device_id, ts, verdict.flags[n_train:], gap_s=setup.episode_gap_s)
        truth += label_segments(data.device_id, ts, label)
        days += (ts[-1] - ts[0]) / DAY_S if len(ts) > 1 else 0.0
    events = event_scores(alarms, truth, tolerance_s=setup.tolerance_s, device_days=days)
    keep = ("precision", "recall", "f1", "false_alerts_per_device_day", "alarm_time_precision", "events", "alarms")
    return {"pointwise": {**pointwise_scores(totals), **totals}, "events": {k: events[k] for k in keep}}


def evaluate_csv(paths: Sequence[Path], setup: CsvSetup) -> dict[str, Any]:
    """Score every file by the protocol in the module docstring; the three rows and per-file figures."""
    files = [load_csv(path, setup) for path in paths]
    ours = verdicts(files, setup)
    per_file = []
    for data, verdict in zip(files, ours, strict=True):
        n_train = min(setup.train_rows, len(data.frame))
        label = data.label if data.label is not None else np.zeros(len(data.frame), dtype=bool)
        counts = pointwise_counts(verdict.flags[n_train:], label[n_train:])
        per_file.append({"file": data.device_id, "rows": len(data.frame), **pointwise_scores(counts)})
    sizes = [len(f.frame) for f in files]
    return {
        "rows": {
            "gridmon": score_labelled(files, ours, setup),
            "null": score_labelled(files, [null_verdict(n) for n in sizes], setup),
            "flag_everything": score_labelled(files, [everything_verdict(n, setup.train_rows) for n in sizes], setup),
        },
        "files": per_file,
        "setup": {
            "train_rows": setup.train_rows,
            "safety": setup.safety,
            "tolerance_s": setup.tolerance_s,
            "episode_gap_s": setup.episode_gap_s,
        },
    }


def _out_path(out: Path, device: str, n_files: int) -> Path:
    if n_files == 1 and out.suffix:
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / (device.replace("/", "_") + ".scores.csv")


def _write_scores(target: Path, data: CsvFile, train_rows: int, verdict: Verdict) -> None:
    """`timestamp,score,flag` per input row (time order); training rows are not scored (empty cells)."""
    n = len(data.frame)
    n_train = min(train_rows, n)
    scores = verdict.score.astype(float).copy()
    scores[:n_train] = np.nan
    flags = pd.array(verdict.flags.astype(np.int8), dtype="Int8")
    flags[:n_train] = pd.NA
    out = pd.DataFrame({"timestamp": data.raw_time.to_numpy(), "score": np.round(scores, 6), "flag": flags})
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, index=False)
