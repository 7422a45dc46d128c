"""`gridmon eval --csv … --no-label`: how often the detector pages on unlabelled real equipment.

Each file is one device, read like a labelled file (`gridmon.evaluation.csv_files.load_csv`)
and scored through `gridmon.evaluation.adapter.detect_series`: the first `train_rows` rows are
for learning, the rest is watched. Without labels every alarm is a page an operator has to
clear, so two figures over the watched rows of all files:
- `onsets_per_device_day`: alarm onsets (a reading flagged while the one before was not; the
  first watched reading counts as following an unflagged one) per device-day watched;
- `time_in_alarm_pct`: share of the watched readings that are flagged (for evenly sampled
  series, the share of time in alarm).
A device-day is measured from the first watched reading to one sampling interval (the median)
after the last. ISA-18.2 calls about 150 alarms per operator-day acceptable; a fleet of 1,500
devices per operator then allows `ISA_ONSETS_PER_DEVICE_DAY` = 0.1 onsets per device-day. The
null and flag-everything detectors are reported from the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gridmon.domain.units import DAY_S
from gridmon.evaluation.adapter import Verdict, everything_verdict, null_verdict
from gridmon.evaluation.csv_files import CsvFile, CsvSetup, load_csv, verdicts
from gridmon.evaluation.nab_score import onsets

ISA_ONSETS_PER_DEVICE_DAY = 0.1


def watched_days(ts: np.ndarray) -> float:
    """Days from the first reading to one median interval after the last."""
    if ts.size == 0:
        return 0.0
    step = float(np.median(np.diff(ts))) if ts.size > 1 else 0.0
    return (float(ts[-1] - ts[0]) + step) / DAY_S


def rate_row(files: Sequence[CsvFile], found: Sequence[Verdict], train_rows: int) -> dict[str, Any]:
    """Onsets per device-day and % of watched readings in alarm for one detector's verdicts."""
    n_onsets = flagged = watched = 0
    days = 0.0
    for data, verdict in zip(files, found, strict=True):
        n_train = min(train_rows, len(data.frame))
        n_onsets += len(onsets(verdict.flags, n_train))
        flagged += int(verdict.flags[n_train:].sum())
        watched += len(data.frame) - n_train
        days += watched_days(data.frame["ts"].to_numpy(dtype=float)[n_train:])
    return {
        "onsets_per_device_day": n_onsets / days if days > 0 else None,
        "time_in_alarm_pct": 100.0 * flagged / watched if watched else None,
        "onsets": n_onsets,
        "device_days": days,
        "watched_readings": watched,
    }


def evaluate_alarm_rate(paths: Sequence[Path], setup: CsvSetup) -> dict[str, Any]:
    """The report of `gridmon eval --csv … --no-label` (module docstring)."""
    files = [load_csv(path, setup) for path in paths]
    ours = verdicts(files, setup)
    sizes = [len(f.frame) for f in files]
    per_file = [
        {"file": data.device_id, "rows": len(data.frame), **rate_row([data], [v], setup.train_rows)}
        for data, v in zip(files, ours, strict=True)
    ]
    return {
        "rows": {
            "gridmon": rate_row(files, ours, setup.train_rows),
            "null": rate_row(files, [null_verdict(n) for n in sizes], setup.train_rows),
            "flag_everything": rate_row(
                files, [everything_verdict(n, setup.train_rows) for n in sizes], setup.train_rows
            ),
        },
        "isa_18_2_onsets_per_device_day": ISA_ONSETS_PER_DEVICE_DAY,
        "files": per_file,
        "setup": {"train_rows": setup.train_rows, "safety": setup.safety},
    }
