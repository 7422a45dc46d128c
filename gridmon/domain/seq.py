"""Readings missing by a device's `seq`: the rule for one step, and the batch plan ingest follows.

The rule (one step between two consecutive stored readings of a device, by time, seqs p then s):
- s > p: s - p - 1 readings are missing (0 when they follow each other);
- s < p after a wrap (p in the top WRAP_WINDOW values, s in the bottom WRAP_WINDOW): s + 2^32 - p - 1;
- any other step backwards (a reset to 0, a jump back: the device restarted) or an equal seq (the
  same reading sent again with another time): nothing missing;
- a reading without seq on either side: nothing known, nothing counted.
`gridmon.storage.seq_gaps` applies the same rule in SQL (at ingest and when it recomputes a span).

The ways a device's batch takes, from the batch's `devices` upsert (`gridmon.storage.seq_gaps`):
- **in order**: the batch lies wholly after everything stored for the device (its first reading
  later than the `last_seen` the upsert found). Its steps run from the device's previous head
  (`last_seq`) through the batch; nothing is read from the table.
- **in the hole**: the batch lies wholly inside the device's *hole*: after the reading stored
  just before its latest in-order batch (`seg_pre`) and before that batch's first reading
  (`seg_first`), where nothing else is stored. Two workers committing a device's consecutive
  batches in the wrong order leave exactly this: the later batch, first, counted one step across
  the earlier one's readings. The earlier batch's steps run from `seg_pre` through its readings,
  and the step into `seg_first` is replaced (usually by 0: the gap counted a moment ago is filled).
- **otherwise** (late or redelivered readings, duplicates, a batch reaching over stored readings):
  recomputed from the stored rows.
The upsert's statement itself counts what needs no look at the batch's rows: the step into an
in-order batch's first reading, the step of each device in the hole with one reading in the batch,
and the step into a hole's end. `plan_batch` counts the
steps of the devices with several readings in the batch; such a device also goes the third way
when two of its readings fall on one stored time (which one was stored is the table's to say).
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
in order the seq of the batch's first reading, the step into it being the upsert's; in the hole
the seq of `seg_pre`). A plain tuple:
one is made per device and batch."""


@dataclass(slots=True)
class BatchPlan:
    """Gaps within the batch's readings — (device, reading ts in epoch s, missing) — and the
    devices whose steps must be recomputed from the table."""

    gaps: list[tuple[str, float, int]] = field(default_factory=list)
    recompute: list[str] = field(default_factory=list)


def repeated_devices(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Devices with more than one reading in the batch: the ones whose steps `plan_batch` counts."""
    ids = [row[0] for row in rows]
    if len(set(ids)) == len(ids):  # the usual batch: one reading per device, no more to do
        return []
    seen: set[str] = set()
    repeated: set[str] = set()
    for device in ids:
        (repeated if device in seen else seen).add(device)
    return sorted(repeated)


def plan_batch(rows: Sequence[Sequence[Any]], heads: Mapping[str, Head]) -> BatchPlan:
    """Count the steps of a batch's readings (rows of device_id, ts, …, seq at index 6 when
    present) by device, each from the seq its head gives. A device missing from `heads`, or whose
    batch goes the third way (ELSEWHERE), is recomputed. The step into a hole's end is not
    counted here (the upsert replaced it)."""
    by_device: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_device.setdefault(row[0], []).append(row)
    plan = BatchPlan()
    for device, items in by_device.items():
        head = heads.get(device)
        if head is None or head[1] == ELSEWHERE:
            plan.recompute.append(device)
            continue
        keyed = sorted(((stored_micros(row[1]), row) for row in items), key=itemgetter(0))
        if any(keyed[k][0] == keyed[k - 1][0] for k in range(1, len(keyed))):
            plan.recompute.append(device)
            continue
        previous = head[2]
        for _key, row in keyed:
            seq = row[6] if len(row) > 6 else None
            missing = missing_between(previous, seq)
            if missing:
                plan.gaps.append((device, row[1], missing))
            previous = seq
    return plan
