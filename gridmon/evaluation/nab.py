"""`gridmon eval nab`: the detector over a corpus in NAB's layout, scored NAB's way.

Corpus: `DIR/<category>/<name>.csv` with columns `timestamp,value` (UTC), and a labels file
(`combined_windows.json`) mapping `"<category>/<name>.csv"` to its windows `[[start, end], …]`.
Every CSV under DIR must have an entry (an empty list for a file without anomalies): a score over
files whose labels are missing would mean nothing.

Per file: rows sorted by time (stable; duplicate timestamps are kept), the first
min(⌊0.15·n⌋, 750) rows are the probation — the detector trains on them — and the rest is
scored through `gridmon.evaluation.adapter.detect_series` with the grid's safety limits off
(NAB's series are not grid quantities). Scoring: `gridmon.evaluation.nab_score`, three profiles,
normalized over the corpus. Two trivial detectors are scored the same way in the same run: null
(never fires: 0 by construction) and flag-everything (every scored row flagged: one onset, at
the first scored row). `ANCHORS` are published detectors' results on the 53-file development
corpus, for reading the figures, not computed here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridmon.evaluation.adapter import Verdict, detect_series, everything_verdict, null_verdict
from gridmon.evaluation.nab_score import PROFILES, normalized, onsets, probation_rows, score_file, window_rows

log = logging.getLogger(__name__)

# NAB's published detections (numenta/NAB results), scored as here (onsets, standard profile)
# on the 53 files of the development corpus.
ANCHORS = {"ARTime": 76.4, "Numenta HTM": 71.3, "Random Cut Forest": 57.5, "Windowed Gaussian": 47.4}


@dataclass
class NabFile:
    """One corpus file, sorted by time, with its windows as row ranges."""

    name: str
    ts: np.ndarray
    value: np.ndarray
    windows: list[tuple[int, int]]

    @property
    def probation(self) -> int:
        return probation_rows(len(self.ts))


def to_epoch(values: pd.Series | list[str]) -> np.ndarray:
    """Timestamps (text, taken as UTC) to epoch seconds."""
    parsed = pd.to_datetime(pd.Series(values), utc=True, format="mixed")
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


def load_corpus(data_dir: Path, labels_file: Path) -> list[NabFile]:
    """Every `DIR/<category>/<name>.csv` with its windows (ValueError on missing labels or columns)."""
    labels = json.loads(labels_file.read_text())
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_file}: expected an object of '<category>/<name>.csv': [[start, end], …]")
    paths = sorted(data_dir.glob("*/*.csv"))
    if not paths:
        raise ValueError(f"{data_dir}: no <category>/<name>.csv files")
    unlabelled = [name for name in (p.relative_to(data_dir).as_posix() for p in paths) if name not in labels]
    if unlabelled:
        more = " …" if len(unlabelled) > 5 else ""
        raise ValueError(f"{labels_file} has no windows for: {', '.join(unlabelled[:5])}{more}")
    corpus = []
    for path in paths:
        name = path.relative_to(data_dir).as_posix()
        raw = pd.read_csv(path)
        if not {"timestamp", "value"} <= set(raw.columns):
            raise ValueError(f"{path}: expected columns timestamp,value; found {', '.join(map(str, raw.columns))}")
        ts = to_epoch(raw["timestamp"])
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        value = pd.to_numeric(raw["value"], errors="coerce").to_numpy(dtype=float)[order]
        bounds = to_epoch([t for window in labels[name] for t in window]).reshape(-1, 2)
        spans = [(float(start), float(end)) for start, end in bounds]
        corpus.append(NabFile(name, ts, value, window_rows(ts, spans)))
    return corpus


def _gridmon(item: NabFile) -> Verdict:
    frame = pd.DataFrame({"ts": item.ts, "value": item.value})
    return detect_series(frame, item.probation, safety=False)


def score_rows(corpus: list[NabFile], verdicts: list[Verdict]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Normalized score per profile over the corpus, totals, and per-file figures."""
    n_windows = sum(len(item.windows) for item in corpus)
    totals = {name: 0.0 for name in PROFILES}
    files = []
    detections = detected = false_onsets = 0
    for item, verdict in zip(corpus, verdicts, strict=True):
        found = onsets(verdict.flags, item.probation)
        per_profile = {name: score_file(found, item.windows, profile) for name, profile in PROFILES.items()}
        for name, result in per_profile.items():
            totals[name] += result.raw
        std = per_profile["standard"]
        detections += std.detections
        detected += std.windows_detected
        false_onsets += std.false_onsets
        files.append(
            {
                "file": item.name,
                "rows": len(item.ts),
                "probation": item.probation,
                "windows": std.windows,
                "raw": {name: round(r.raw, 4) for name, r in per_profile.items()},
                "detections": std.detections,
                "windows_detected": std.windows_detected,
                "false_onsets": std.false_onsets,
                # where: each window's rows and its first detection (None: missed), and the
                # rows of the false onsets (rows of the file sorted by time)
                "window_onsets": [
                    [a, b, hit] for (a, b), hit in zip(item.windows, std.first_onsets, strict=True)
                ],
                "false_onset_rows": list(std.false_rows),
            }
        )
    row: dict[str, Any] = {name: normalized(totals[name], n_windows, PROFILES[name]) for name in PROFILES}
    row |= {"detections": detections, "windows_detected": detected, "false_onsets": false_onsets}
    return row, files


def evaluate_nab(
    data_dir: Path, labels_file: Path, *, detector: Callable[[NabFile], Verdict] = _gridmon
) -> dict[str, Any]:
    """The report of `gridmon eval nab` (module docstring); per-file figures are gridmon's."""
    corpus = load_corpus(data_dir, labels_file)
    verdicts = []
    for item in corpus:
        verdicts.append(detector(item))
        log.info("%s: %d rows, %d flagged", item.name, len(item.ts), int(verdicts[-1].flags.sum()))
    ours, files = score_rows(corpus, verdicts)
    null, _ = score_rows(corpus, [null_verdict(len(item.ts)) for item in corpus])
    everything, _ = score_rows(corpus, [everything_verdict(len(item.ts), item.probation) for item in corpus])
    return {
        "rows": {"gridmon": ours, "null": null, "flag_everything": everything},
        "anchors": {"profile": "standard", "corpus": "NAB, 53 files", **ANCHORS},
        "corpus": {
            "files": len(corpus),
            "windows": sum(len(item.windows) for item in corpus),
            "rows": int(sum(len(item.ts) for item in corpus)),
        },
        "files": files,
    }
