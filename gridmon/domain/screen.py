"""Screening reading rows of the wire format (`gridmon.domain.wire`) before a job uses them.

The bridge validates every payload, but the ingest task takes whatever its queue holds (an older
bridge, a message written by hand, a bug): a row the table would refuse — a timestamp outside the
accepted range, a non-finite value — must become a dead letter on its own instead of taking its
batch down with it. The common case, a batch of good rows, costs a few vectorised comparisons;
only a batch with a bad row is looked at row by row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gridmon.domain.readings import (
    BAD_DEVICE_ID,
    BAD_SEQ,
    BAD_TIMESTAMP,
    CORE_METRICS,
    MAX_EXTRA_METRICS,
    NON_FINITE,
    NON_NUMERIC,
    NOT_OBJECT,
    OUT_OF_PHYSICAL_RANGE,
    PHYSICAL_LIMITS,
    SEQ_MODULUS,
    TS_MAX,
    TS_MIN,
    TS_RANGE_TEXT,
    Rejection,
    valid_device_id,
)

_LOW = np.array([TS_MIN] + [PHYSICAL_LIMITS[m][0] for m in CORE_METRICS])
_HIGH = np.array([TS_MAX] + [PHYSICAL_LIMITS[m][1] for m in CORE_METRICS])


def row_problem(row: Sequence[Any]) -> Rejection | None:
    """Why a row `[device_id, ts, voltage, current, temperature, extra(, seq)]` cannot be stored, or None."""
    if not isinstance(row, list | tuple) or len(row) not in (6, 7):
        return Rejection(NOT_OBJECT, "row is not [device_id, ts, voltage, current, temperature, extra(, seq)]")
    if len(row) == 7 and not _good_seq(row[6]):
        return Rejection(BAD_SEQ, f"seq {str(row[6])[:40]} is not an integer in [0, 2^32)")
    device_id, ts, *values = row[:5]
    extra = row[5]
    if not isinstance(device_id, str) or not valid_device_id(device_id):
        return Rejection(BAD_DEVICE_ID, f"device_id {str(device_id)[:80]!r} is not a device id")
    if type(ts) not in (int, float) or not math.isfinite(ts) or not TS_MIN <= ts < TS_MAX:
        return Rejection(BAD_TIMESTAMP, f"ts {str(ts)[:40]} is outside the accepted range {TS_RANGE_TEXT}")
    for name, value in zip(CORE_METRICS, values, strict=True):
        if type(value) not in (int, float):
            return Rejection(NON_NUMERIC, f"{name} is {type(value).__name__}, not a number")
        if not math.isfinite(value):
            return Rejection(NON_FINITE, f"{name} is {value}")
        low, high = PHYSICAL_LIMITS[name]
        if not low <= value <= high:
            return Rejection(OUT_OF_PHYSICAL_RANGE, f"{name}={value} outside physical range [{low}, {high}]")
    if extra is not None:
        if not isinstance(extra, dict) or len(extra) > MAX_EXTRA_METRICS:
            return Rejection(NOT_OBJECT, f"extra must be an object of at most {MAX_EXTRA_METRICS} numbers")
        for key, value in extra.items():
            if not isinstance(key, str) or type(value) not in (int, float) or not math.isfinite(value):
                return Rejection(NON_NUMERIC, f"extra metric {str(key)[:64]!r} is not a finite number")
    return None


def _good_seq(seq: Any) -> bool:
    return seq is None or (type(seq) is int and 0 <= seq < SEQ_MODULUS)


def _good_lengths_and_seqs(rows: Sequence[Sequence[Any]]) -> bool:
    """Six items, or seven with a good `seq` last (in C-level passes: this runs on every batch)."""
    lengths = set(map(len, rows))
    if lengths == {6}:
        return True
    if not lengths <= {6, 7}:
        return False
    seqs = [row[6] for row in rows if len(row) == 7]
    if not set(map(type, seqs)) <= {int, type(None)}:
        return False
    numbers = [seq for seq in seqs if seq is not None]
    return not numbers or (min(numbers) >= 0 and max(numbers) < SEQ_MODULUS)


def _all_good(rows: Sequence[Sequence[Any]]) -> bool:
    """The fast check: every row has the shape, finite values inside the bounds, plain ids."""
    try:
        values = np.array([row[1:5] for row in rows], dtype=float)
    except (TypeError, ValueError, IndexError):
        return False
    if values.shape != (len(rows), 4):
        return False
    with np.errstate(invalid="ignore"):
        inside = (values >= _LOW) & (values <= _HIGH) & (values[:, :1] < TS_MAX)
    if not bool(inside.all()):
        return False
    # numpy also reads "230" and True as numbers: the types themselves must be numbers.
    if not {type(v) for row in rows for v in row[1:5]} <= {int, float}:
        return False
    if not _good_lengths_and_seqs(rows):
        return False
    ids = {row[0] for row in rows}
    if not all(isinstance(i, str) and valid_device_id(i) for i in ids):
        return False
    return all(row[5] is None or row_problem(row) is None for row in rows)


def screen_rows(rows: Sequence[Sequence[Any]]) -> tuple[list[Sequence[Any]], list[tuple[Sequence[Any], Rejection]]]:
    """(rows to store, [(row, why not)]) — in the batch's order."""
    if not rows or _all_good(rows):
        return list(rows), []
    good: list[Sequence[Any]] = []
    bad: list[tuple[Sequence[Any], Rejection]] = []
    for row in rows:
        problem = row_problem(row)
        if problem is None:
            good.append(row)
        else:
            bad.append((row, problem))
    return good, bad


def row_payload(row: Any) -> bytes:
    """A row as the JSON object a sensor would send (NaN/Infinity kept as such: a replay names them)."""
    if isinstance(row, list | tuple) and len(row) in (6, 7):
        device_id, ts, voltage, current, temperature, extra = row[:6]
        doc: dict[str, Any] = {
            "device_id": device_id,
            "timestamp": ts,
            "voltage": voltage,
            "current": current,
            "temperature": temperature,
        }
        if extra:
            doc["extra"] = extra
        if len(row) == 7 and row[6] is not None:
            doc["seq"] = row[6]
    else:
        doc = {"row": row}
    return json.dumps(doc, default=repr, allow_nan=True).encode()


def row_topic(row: Any) -> str:
    """The topic the row's device publishes to, or `grid/sensors/?` when it names none."""
    device = row[0] if isinstance(row, list | tuple) and row and isinstance(row[0], str) else "?"
    return f"grid/sensors/{device}"
