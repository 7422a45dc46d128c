"""The three ways ingest accounts `seq` gaps — from the batch and the device's head when readings
arrive in order, from the hole behind the latest in-order batch when two batches were committed
in the wrong order, from the stored rows otherwise — always agree with counting the table afresh.

`plan_batch` is checked on its own (which devices take which way); then random delivery histories
(in order, swapped, late, redelivered, duplicated, restarts, wrap-arounds, readings without seq)
go through the real write path, and after every batch the gaps (`reading_gaps_all`: the rows and
each device's pending step) and `devices.last_seq` must equal what a from-scratch pass over
`sensor_readings` gives, and the count changes the batches reported must add up to the total.
"""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest

from gridmon.domain.readings import SEQ_MODULUS
from gridmon.domain.seq import (
    ELSEWHERE,
    IN_HOLE,
    IN_ORDER,
    Head,
    missing_between,
    plan_batch,
    repeated_devices,
    stored_micros,
)
from gridmon.storage.readings import write_readings

T0 = 1_764_000_000.0


def r(device: str, ts: float, seq: int | None) -> list[Any]:
    return [device, ts, 230.0, 4.0, 35.0, None, seq]


def test_missing_between_follows_the_rule() -> None:
    assert missing_between(4, 5) == 0
    assert missing_between(4, 9) == 4
    assert missing_between(SEQ_MODULUS - 2, 1) == 2  # wrap: 2^32-1 and 0 missing
    assert missing_between(9, 0) == 0  # restart
    assert missing_between(9, 9) == 0  # the same reading again
    assert missing_between(None, 9) == 0 and missing_between(9, None) == 0


def test_plan_counts_in_order_batches_from_the_head_and_sends_the_rest_to_the_table() -> None:
    heads: dict[str, Head] = {
        "in_order": ("in_order", IN_ORDER, 10),
        "late": ("late", ELSEWHERE, None),  # the batch reaches back before last_seen
        "dup": ("dup", IN_ORDER, 10),
        "new": ("new", None, None),
        "plain": ("plain", IN_ORDER, 10),
        "plain_late": ("plain_late", ELSEWHERE, 10),
    }
    rows = [
        r("in_order", T0 + 2, 13),
        r("in_order", T0 + 1, 11),  # out of order inside the batch: sorted by time first
        r("late", T0, 11),
        r("dup", T0 + 1, 11),
        r("dup", T0 + 1, 12),
        r("new", T0 + 1, 7),
        r("new", T0 + 2, 9),
        r("unknown", T0 + 1, 1),  # the upsert did not return it
        r("plain", T0 + 1, None),  # in order: nothing to count
        r("plain_late", T0 - 1, None),  # may split a step counted before
    ]
    plan = plan_batch(rows, heads)
    assert plan.gaps == [("in_order", T0 + 2, 1), ("new", T0 + 2, 1)]  # 12 missing before 13, 8 before 9
    assert sorted(plan.recompute) == ["dup", "late", "plain_late", "unknown"]


def test_plan_counts_a_batch_in_the_hole_from_the_reading_before_it() -> None:
    # Stored: seq 4 at T0, then (committed first) the later batch from seq 8 at T0 + 9. The earlier
    # batch brings 5 and 7: 6 is missing. (The step into the hole's end is the upsert's to replace.)
    heads: dict[str, Head] = {"dev": ("dev", IN_HOLE, 4), "dup": ("dup", IN_HOLE, 4)}
    batch = [r("dev", T0 + 7, 7), r("dev", T0 + 5, 5), r("dup", T0 + 5, 5), r("dup", T0 + 5, 6)]
    plan = plan_batch(batch, heads)
    assert plan.gaps == [("dev", T0 + 7, 1)]
    assert plan.recompute == ["dup"]


def test_only_devices_with_several_readings_are_planned_in_python() -> None:
    assert repeated_devices([r("a", T0, 1), r("b", T0, 1)]) == []
    assert repeated_devices([r("b", T0, 1), r("a", T0, 1), r("b", T0 + 1, 2), r("c", T0, 1), r("b", T0, 1)]) == ["b"]


def test_stored_micros_is_what_postgres_stores(db: psycopg.Connection) -> None:
    rng = random.Random(5)
    stamps = [T0 + rng.random() * 1e5 for _ in range(2000)] + [T0 + k * 0.0000005 for k in range(200)]
    got = db.execute(
        "SELECT array_agg(((extract(epoch FROM to_timestamp(t)) - 946684800) * 1000000)::bigint ORDER BY o)"
        " FROM unnest(%s::float8[]) WITH ORDINALITY AS u(t, o)",
        (stamps,),
    ).fetchone()
    assert got is not None and got[0] == [stored_micros(t) for t in stamps]


def write(db: psycopg.Connection, batch: list[list[Any]]) -> int:
    """Write one batch; returns how it changed the missing count (what the metric adds)."""
    with db.transaction():  # one batch, one transaction, as the ingest task writes it
        return write_readings(db, batch).missing_change


def fresh_count(db: psycopg.Connection) -> tuple[dict[tuple[str, float], int], dict[str, int | None]]:
    """Gaps and heads by a pass over the whole table."""
    gaps: dict[tuple[str, float], int] = {}
    heads: dict[str, int | None] = {}
    previous: dict[str, int | None] = {}
    rows = db.execute(
        "SELECT device_id, extract(epoch FROM ts)::float8, seq FROM sensor_readings ORDER BY device_id, ts"
    )
    for device, ts, seq in rows:
        missing = missing_between(previous.get(device), seq)
        if missing:
            gaps[(device, ts)] = missing
        previous[device] = seq
        heads[device] = seq
    return gaps, heads


def stored(db: psycopg.Connection) -> tuple[dict[tuple[str, float], int], dict[str, int | None]]:
    gaps = {
        (d, float(ts)): int(n)
        for d, ts, n in db.execute("SELECT device_id, extract(epoch FROM ts)::float8, missing FROM reading_gaps_all")
    }
    heads = {d: s for d, s in db.execute("SELECT device_id, last_seq FROM devices")}
    return gaps, heads


def history(rng: random.Random, devices: int) -> list[list[Any]]:
    """Each device's readings as sent: a counter with restarts and a wrap, losses marked later."""
    out: list[list[Any]] = []
    for d in range(devices):
        device = f"dev_{d}"
        seq = rng.choice([0, SEQ_MODULUS - 30])
        for k in range(120):
            if rng.random() < 0.02:
                seq = 0  # the device restarted
            with_seq = rng.random() > 0.05
            out.append(r(device, T0 + k + rng.choice([0.0, 0.25, 0.0000004]), seq if with_seq else None))
            seq = (seq + 1) % SEQ_MODULUS
    return out


def deliveries(rng: random.Random, sent: list[list[Any]]) -> list[list[list[Any]]]:
    """Batches as a lossy, redelivering, reordering pipeline might hand them over."""
    by_time = sorted(sent, key=lambda row: row[1])
    kept = [row for row in by_time if rng.random() > 0.1]
    lost_for_now = [row for row in by_time if row not in kept]
    batches: list[list[list[Any]]] = []
    k = 0
    while k < len(kept):
        size = rng.randint(1, 25)
        batch = kept[k : k + size]
        if rng.random() < 0.2:
            rng.shuffle(batch)
        if rng.random() < 0.1 and batch:
            batch.append(list(batch[0]))  # a duplicate inside the batch
        if rng.random() < 0.1 and batch:
            twin = list(batch[-1])
            twin[6] = None if twin[6] is None else (twin[6] + 5) % SEQ_MODULUS
            batch.append(twin)  # the same time sent twice with different seqs
        batches.append(batch)
        if rng.random() < 0.15 and len(batches) > 1:
            batches[-2], batches[-1] = batches[-1], batches[-2]  # committed in the wrong order
        if rng.random() < 0.1:
            batches.append(list(batch))  # redelivered
        k += size
    late = [row for row in lost_for_now if rng.random() < 0.5]  # half of the losses turn up late
    for j in range(0, len(late), 7):
        batches.insert(rng.randint(len(batches) // 2, len(batches)), late[j : j + 7])
    return batches


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_histories_match_a_fresh_count_after_every_batch(db: psycopg.Connection, seed: int) -> None:
    rng = random.Random(seed)
    batches = deliveries(rng, history(rng, devices=6))
    assert len(batches) > 30
    ways: set[int] = set()
    reported = 0
    for k, batch in enumerate(batches):
        reported += write(db, batch)
        assert stored(db) == fresh_count(db), f"batch {k} of seed {seed}"
        assert reported == sum(stored(db)[0].values()), f"batch {k} of seed {seed}"
        ways.update(way for (way,) in db.execute("SELECT DISTINCT prior_way FROM devices WHERE prior_way IS NOT NULL"))
    assert ways == {IN_ORDER, IN_HOLE, ELSEWHERE}  # the histories exercise all three ways


def test_batches_committed_in_the_wrong_order_meet_in_the_hole(db: psycopg.Connection) -> None:
    write(db, [r("dev", T0, 4)])
    write(db, [r("dev", T0 + 8, 8), r("dev", T0 + 9, 9)])  # the later batch commits first
    assert stored(db)[0] == {("dev", T0 + 8): 3}
    write(db, [r("dev", T0 + 5, 5), r("dev", T0 + 7, 7)])  # the earlier one: 6 never came
    assert stored(db) == fresh_count(db) == ({("dev", T0 + 7): 1}, {"dev": 9})
    # it went the hole's way (a recompute would have closed the hole): the hole narrowed to 7 … 8
    hole = db.execute("SELECT prior_way, extract(epoch FROM seg_pre_ts), seg_pre_seq FROM devices").fetchone()
    assert hole == (IN_HOLE, T0 + 7, 7)
    write(db, [r("dev", T0 + 6, 6)])  # late, and it fits the rest of the hole: nothing missing
    assert stored(db) == fresh_count(db) == ({}, {"dev": 9})


def test_a_device_that_stops_sending_seq_has_no_head(db: psycopg.Connection) -> None:
    write(db, [r("dev_a", T0, 1), r("dev_a", T0 + 1, 2)])
    write(db, [["dev_a", T0 + 2, 230.0, 4.0, 35.0, None]])  # an old firmware, no seq
    assert db.execute("SELECT last_seq FROM devices").fetchone() == (None,)
    write(db, [r("dev_a", T0 + 3, 9)])  # its successor knows nothing about 3 … 8
    assert stored(db) == fresh_count(db)
    assert stored(db)[0] == {}


def test_one_reading_per_device_committed_in_the_wrong_order(db: psycopg.Connection) -> None:
    """The benchmark's shape (every batch one reading of each device): the later batch counts a
    gap of one per device, the earlier one fills it from the device's row alone."""
    devices = ["a", "b", "c"]
    write(db, [r(d, T0, 10) for d in devices])
    write(db, [r(d, T0 + 2, 12) for d in devices])  # committed first
    assert stored(db)[0] == {(d, T0 + 2): 1 for d in devices}
    write(db, [r("a", T0 + 1, 11), r("b", T0 + 1, 3), r("c", T0 + 1.5, None)])  # a fills; b restarted
    assert stored(db) == fresh_count(db) == ({("b", T0 + 2): 8}, {d: 12 for d in devices})
    assert {way for (way,) in db.execute("SELECT prior_way FROM devices")} == {IN_HOLE}


def test_a_batch_waiting_for_the_lock_fills_the_gap_committed_meanwhile(
    db: psycopg.Connection, migrated_database: str
) -> None:
    """Two workers, one reading per device each: the earlier batch moves and waits for the device
    rows the later one holds; the later one commits a gap the earlier must then see and fill."""
    import threading

    devices = [f"dev_{k}" for k in range(50)]
    write(db, [r(d, T0, 0) for d in devices])
    with psycopg.connect(migrated_database) as later, psycopg.connect(migrated_database) as earlier:
        write_readings(later, [r(d, T0 + 2, 2) for d in devices])  # uncommitted: holds the rows
        done = threading.Event()

        def other() -> None:
            write_readings(earlier, [r(d, T0 + 1, 1) for d in devices])
            earlier.commit()
            done.set()

        worker = threading.Thread(target=other)
        worker.start()
        assert not done.wait(1.0)  # moved, and blocked behind the later batch
        later.commit()
        worker.join(10)
    assert done.is_set()
    assert stored(db) == fresh_count(db) == ({}, {d: 2 for d in devices})
    assert {way for (way,) in db.execute("SELECT prior_way FROM devices")} == {IN_HOLE}


def test_a_pair_committed_in_the_wrong_order_writes_no_gap_row(db: psycopg.Connection) -> None:
    """The step into the latest in-order batch stays on the device's row: the gap the later batch
    counts and the earlier one fills is never a row; a real loss is written once the hole is left."""
    devices = ["a", "b"]

    def rows() -> int:
        row = db.execute("SELECT count(*) FROM reading_gaps").fetchone()
        return int(row[0]) if row else -1

    reported = write(db, [r(d, T0, 10) for d in devices])
    reported += write(db, [r(d, T0 + 2, 12) for d in devices])  # committed first
    assert stored(db)[0] == {(d, T0 + 2): 1 for d in devices} and rows() == 0
    reported += write(db, [r(d, T0 + 1, 11) for d in devices])
    assert stored(db) == fresh_count(db) == ({}, {d: 12 for d in devices}) and rows() == 0
    reported += write(db, [r(d, T0 + 4, 15) for d in devices])  # 13 and 14 never come
    assert stored(db)[0] == {(d, T0 + 4): 2 for d in devices} and rows() == 0
    reported += write(db, [r(d, T0 + 5, 16) for d in devices])  # the hole moves on: the loss is a row
    assert stored(db) == fresh_count(db) == ({(d, T0 + 4): 2 for d in devices}, {d: 16 for d in devices})
    assert rows() == 2 and reported == 4
    reported += write(db, [r("a", T0 + 3, 14), r("a", T0 + 3.5, 14)])  # late, with a duplicate seq
    assert stored(db) == fresh_count(db) == ({("a", T0 + 3): 1, ("b", T0 + 4): 2}, {d: 16 for d in devices})
    assert reported == 3
