"""`gridmon eval --csv`: score any labelled CSV with the same detection code.

Each input file is one device (its id is the file's parent folder and name, e.g.
`valve1/3`). Per file, the SKAB protocol: the first `train_rows` rows are the training part —
the forest is trained on them and they are the history that seeds the baselines — and the rest
is scored; counts are summed over files. A file whose training part is too short for a forest
(`MIN_TRAINING_SAMPLES`) is scored by the safety and statistical detectors only.

A reading is flagged when `detect` reports any finding for it. Its score (written with `--out`)
is the pipeline's normalised row score: 1.0 at a detector's threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridmon.detection.episodes import group_into_episodes
from gridmon.detection.forest import MIN_TRAINING_SAMPLES, train_forest
from gridmon.detection.pipeline import run_pipeline
from gridmon.evaluation.scoring import event_scores, label_segments, pointwise_counts, pointwise_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CsvSetup:
    """How to read and score the files."""

    time_col: str
    mapping: Mapping[str, str]
    label_col: str
    sep: str = ","
    train_rows: int = 400
    safety: bool = True
    tolerance_s: float = 30.0
    max_gap_s: float = 60.0
    out: Path | None = None


@dataclass
class LabelledFrame:
    """One file as a frame of readings with its labels (rows in file order)."""

    device_id: str
    frame: pd.DataFrame
    label: np.ndarray
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


def _epoch_seconds(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=float)
        # Epoch milliseconds are recognisable by size (1e11 s is the year 5138).
        return values / 1000.0 if np.nanmedian(np.abs(values)) > 1e11 else values
    parsed = pd.to_datetime(column, utc=True, format="mixed")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()


def device_name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def load_labelled_csv(path: Path, setup: CsvSetup) -> LabelledFrame:
    """Read one file: map its columns to metrics, parse time and labels."""
    raw = pd.read_csv(path, sep=setup.sep)
    missing = [c for c in (setup.time_col, setup.label_col, *setup.mapping.values()) if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {', '.join(missing)}; found {', '.join(map(str, raw.columns))}")
    device = device_name(path)
    frame = pd.DataFrame({"device_id": device, "ts": _epoch_seconds(raw[setup.time_col])})
    for name, column in setup.mapping.items():
        frame[name] = pd.to_numeric(raw[column], errors="coerce").astype(float)
    label = pd.to_numeric(raw[setup.label_col], errors="coerce").fillna(0).to_numpy() > 0
    return LabelledFrame(device_id=device, frame=frame, label=label, raw_time=raw[setup.time_col])


def evaluate_csv(paths: Sequence[Path], setup: CsvSetup) -> dict[str, Any]:
    """Score every file by the protocol in the module docstring; summed figures."""
    totals = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    episodes, truth = [], []
    files = []
    for path in paths:
        data = load_labelled_csv(path, setup)
        n_train = min(setup.train_rows, len(data.frame))
        train, test = data.frame.iloc[:n_train], data.frame.iloc[n_train:].reset_index(drop=True)
        model = train_forest(train) if n_train >= MIN_TRAINING_SAMPLES else None
        if model is None:
            log.warning("%s: %d training rows, too few for a forest; statistical and safety only", path, n_train)
        result = run_pipeline(test, history=train, model=model, safety=setup.safety, with_scores=True)
        flagged_ts = {f.ts for f in result.findings}
        flag = test["ts"].isin(flagged_ts).to_numpy()
        test_label = data.label[n_train:]
        counts = pointwise_counts(flag, test_label)
        for key in totals:
            totals[key] += counts[key]
        episodes += group_into_episodes(result.findings, max_gap_s=setup.max_gap_s)
        truth += label_segments(data.device_id, test["ts"].to_numpy(), test_label)
        files.append({"file": str(path), "rows": len(data.frame), "scored": len(test), **pointwise_scores(counts)})
        if setup.out is not None:
            score = result.row_score if result.row_score is not None else np.zeros(len(test))
            _write_scores(_out_path(setup.out, path, len(paths)), data, n_train, score, flag)
    events = event_scores(episodes, truth, tolerance_s=setup.tolerance_s)
    return {
        "pointwise": {**pointwise_scores(totals), **totals},
        "events": {k: events[k] for k in ("precision", "recall", "f1", "events", "detected", "episodes")},
        "files": files,
        "setup": {"train_rows": setup.train_rows, "safety": setup.safety, "tolerance_s": setup.tolerance_s},
    }


def _out_path(out: Path, source: Path, n_files: int) -> Path:
    if n_files == 1 and out.suffix:
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / (device_name(source).replace("/", "_") + ".scores.csv")


def _write_scores(target: Path, data: LabelledFrame, n_train: int, score: np.ndarray, flag: np.ndarray) -> None:
    """`timestamp,score,flag` per input row; training rows are not scored (empty cells)."""
    n = len(data.frame)
    scores = np.full(n, np.nan)
    flags = pd.array([pd.NA] * n, dtype="Int8")
    scores[n_train:] = score
    flags[n_train:] = flag.astype(np.int8)
    out = pd.DataFrame({"timestamp": data.raw_time.to_numpy(), "score": np.round(scores, 6), "flag": flags})
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, index=False)
