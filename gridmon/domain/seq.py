"""Readings missing by a device's `seq`: the rule for one step, and the batch plan ingest follows.

The rule (one step between two consecutive stored readings of a device, by time, seqs p then s):
- s > p: s - p - 1 readings are missing (0 when they follow each other);
- s < p after a wrap (p in the top WRAP_WINDOW values, s in the bottom WRAP_WINDOW): s + 2^32 - p - 1;
- any other step backwards (a reset to 0, a jump back: the device restarted) or an equal seq (the
  same reading sent again with another time): nothing missing;
- a reading without seq on either side: nothing known, nothing counted.
`gridmon.storage.seq_gaps` applies the same rule in SQL when it recomputes a span from the table.

The plan, per device of a batch, from what the batch's `devices` upsert returned (its `Head`):
- **in order**: the batch lies wholly after everything stored for the device (its first reading
  later than the `last_seen` the upsert found). Its steps follow from the batch and the device's
  previous head (`last_seq`); nothing is read from the table.
- **in the hole**: the batch lies wholly inside the device's *hole*: after the reading stored
  just before its latest in-order batch (`seg_pre`) and before that batch's first reading
  (`seg_first`), where nothing else is stored. Two workers committing a device's consecutive
  batches in the wrong order leave exactly this: the later batch, first, counted one step across
  the earlier one's readings. The earlier batch's steps run from `seg_pre` through its readings,
  and the step into `seg_first` is replaced (usually by 0: the gap counted a moment ago is filled).
- **otherwise** (late or redelivered readings, duplicates, a batch reaching over stored readings):
  recomputed from the stored rows.
A device also goes the third way when two of its readings in the batch fall on one stored time
(which one was stored is the table's to say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from gridmon.domain.readings import SEQ_MODULUS

WRAP_WINDOW = 2**16
"""A step from the top WRAP_WINDOW values of seq to the bottom WRAP_WINDOW is a wrap-around."""

_PG_EPOCH_S = 946_684_800.0  # 2000-01-01T00:00:00Z, where PostgreSQL's timestamps count from


def missing_between(previous: int | None, current: int | None) -> int:
    """Readings missing between two consecutive stored readings with these seqs (the rule above)."""
    if previous is None or current is None:
        return 0
    if current > previous:
        return current - previous - 1
    if previous >= SEQ_MODULUS - WRAP_WINDOW and current < WRAP_WINDOW:
        return current + SEQ_MODULUS - previous - 1
    return 0


def stored_micros(ts: float) -> int:
    """The time a reading stamped `ts` (epoch s) is stored at, in microseconds since 2000: exactly
    what `to_timestamp(ts)` keeps (PostgreSQL shifts to its epoch, then rounds half to even), so
    two readings of a batch that the table would store at one time are seen as duplicates."""
    return round((ts - _PG_EPOCH_S) * 1_000_000)


IN_ORDER, IN_HOLE, ELSEWHERE = 1, 2, 0
"""The ways a device's batch can take (`devices.prior_way`); NULL/None: the batch created the device."""

Head = tuple[str, int | None, int | None]
"""A device as the batch's `devices` upsert returned it: (device_id, way, seq its steps start from:
in order the seq of the latest stored reading, in the hole the seq of `seg_pre`). A plain tuple:
one is made per device and batch."""

HoleEnd = tuple[float, int | None]
"""The end of a device's hole: the time (epoch s) and seq of `seg_first`, whose step is replaced."""


@dataclass(slots=True)
class BatchPlan:
    """Gaps the batch alone determines — (device, reading ts in epoch s, missing) — the steps into
    a hole's end it replaces — (device, ts, missing now, missing before) — and the devices whose
    steps must be recomputed from the table."""

    gaps: list[tuple[str, float, int]] = field(default_factory=list)
    replaced: list[tuple[str, float, int, int]] = field(default_factory=list)
    recompute: list[str] = field(default_factory=list)


def plan_batch(
    rows: Sequence[Sequence[Any]], heads: Mapping[str, Head], hole_ends: Mapping[str, HoleEnd] | None = None
) -> BatchPlan:
    """Split a batch (rows of device_id, ts, …, seq at index 6 when present) by device. A device
    missing from `heads`, or in the hole without its end in `hole_ends`, is recomputed."""
    # Written for the usual batch, one or a few readings per device: ~0.5 µs per reading.
    by_device: dict[str, list[Sequence[Any]]] = {}
    group = by_device.get
    for row in rows:
        items = group(row[0])
        if items is None:
            by_device[row[0]] = [row]
        else:
            items.append(row)
    ends = hole_ends or {}
    plan = BatchPlan()
    for device, items in by_device.items():
        head = heads.get(device)
        end = ends.get(device) if head is not None and head[1] == IN_HOLE else None
        if head is None or head[1] == ELSEWHERE or (head[1] == IN_HOLE and end is None):
            plan.recompute.append(device)
            continue
        previous = head[2]
        if len(items) == 1 and end is None:  # the usual case, kept short
            row = items[0]
            missing = missing_between(previous, row[6] if len(row) > 6 else None)
            if missing:
                plan.gaps.append((device, row[1], missing))
            continue
        keyed = sorted(((stored_micros(row[1]), row) for row in items), key=itemgetter(0))
        if any(keyed[k][0] == keyed[k - 1][0] for k in range(1, len(keyed))):
            plan.recompute.append(device)
            continue
        for _key, row in keyed:
            seq = row[6] if len(row) > 6 else None
            missing = missing_between(previous, seq)
            if missing:
                plan.gaps.append((device, row[1], missing))
            previous = seq
        if end is not None:  # in the hole: the step into its end, again
            plan.replaced.append((device, end[0], missing_between(previous, end[1]), missing_between(head[2], end[1])))
    return plan
