"""Gap accounting from the devices' `seq`: what ingest counts as missing, and what it must not.

Every test stores batches through the ingest job (`store_batch`, the Celery task's body) into the
real database and reads the gaps back (`reading_gaps_all`); none of the harmless cases may produce a gap.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gridmon import metrics
from gridmon.alerts.gaps import check_gaps
from gridmon.domain.readings import BAD_SEQ, Reading, Rejection, parse_reading
from gridmon.jobs.ingest import store_batch
from gridmon.simulator.payload import encode_reading
from gridmon.storage.seq_gaps import missing_for_device, missing_total
from tests.api_support import READER, ClientFactory, bearer, make_client

__all__ = ["make_client"]  # the fixture, re-exported for pytest

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z
WRAP = 2**32


def row(seq: int | None, k: int, device: str = "dev_a") -> list[Any]:
    """Reading number `k` of a device (one a second) carrying `seq`."""
    return [device, T0 + k, 230.0, 4.0, 35.0, None, seq]


def readings(seqs: list[int], start: int = 0, device: str = "dev_a") -> list[list[Any]]:
    return [row(s, start + k, device) for k, s in enumerate(seqs)]


def gaps(db: psycopg.Connection, device: str = "dev_a") -> list[tuple[float, int]]:
    return [
        (float(ts), int(n))
        for ts, n in db.execute(
            "SELECT extract(epoch FROM ts), missing FROM reading_gaps_all WHERE device_id = %s ORDER BY ts", (device,)
        )
    ]


def test_contiguous_sequence_has_no_gap(db: psycopg.Connection) -> None:
    store_batch(readings(list(range(100))))
    assert missing_for_device(db, "dev_a") == 0
    assert db.execute("SELECT count(*) FROM sensor_readings WHERE seq IS NOT NULL").fetchone() == (100,)


def test_a_real_gap_is_counted_exactly_on_the_reading_after_it(db: psycopg.Connection) -> None:
    seqs = [*range(0, 10), *range(17, 30)]  # 10..16 never arrive
    times = [*range(0, 10), *range(17, 30)]
    store_batch([row(s, t) for s, t in zip(seqs, times, strict=True)])
    assert gaps(db) == [(T0 + 17, 7)]
    assert missing_for_device(db, "dev_a") == 7


def test_gaps_across_batches_and_devices(db: psycopg.Connection) -> None:
    store_batch(readings([0, 1, 2]) + readings([5, 6], start=10, device="dev_b"))
    store_batch(readings([5, 6], start=5) + readings([7, 9], start=12, device="dev_b"))
    assert missing_for_device(db, "dev_a") == 2  # 3, 4
    assert missing_for_device(db, "dev_b") == 1  # 8
    assert missing_total(db) == 3


def test_redelivered_batch_counts_nothing_twice(db: psycopg.Connection) -> None:
    batch = [row(s, s) for s in (0, 1, 2, 5, 6)]
    for _ in range(3):
        store_batch(batch)
    assert gaps(db) == [(T0 + 5, 2)]


def test_duplicates_within_a_batch_are_no_gap(db: psycopg.Connection) -> None:
    batch = readings(list(range(10)))
    store_batch(batch + batch[3:6] + batch[:1])
    assert missing_for_device(db, "dev_a") == 0


def test_same_seq_sent_again_with_a_new_time_is_no_gap(db: psycopg.Connection) -> None:
    store_batch([row(0, 0), row(1, 1), row(1, 2), row(2, 3)])
    assert missing_for_device(db, "dev_a") == 0


def test_out_of_order_within_and_across_batches_is_no_gap(db: psycopg.Connection) -> None:
    batch = readings(list(range(200)))
    random.Random(7).shuffle(batch)
    for k in range(0, 200, 37):
        store_batch(batch[k : k + 37])
    assert missing_for_device(db, "dev_a") == 0


def test_late_arrival_fills_the_gap(db: psycopg.Connection) -> None:
    store_batch([row(s, s) for s in (0, 1, 2, 6, 7)])
    assert missing_for_device(db, "dev_a") == 3
    store_batch([row(4, 4)])  # one late reading: 3 and 5 are still missing, on either side of it
    assert gaps(db) == [(T0 + 4, 1), (T0 + 6, 1)]
    store_batch([row(3, 3), row(5, 5)])
    assert missing_for_device(db, "dev_a") == 0
    assert gaps(db) == []


def test_late_batch_before_everything_stored(db: psycopg.Connection) -> None:
    store_batch([row(s, s) for s in range(50, 60)])
    store_batch([row(s, s) for s in (40, 41, 42)])  # 43..49 missing between the two
    assert gaps(db) == [(T0 + 50, 7)]


def test_device_restart_is_a_new_epoch_not_a_gap(db: psycopg.Connection) -> None:
    before = [row(s, k) for k, s in enumerate(range(1000, 1010))]
    after = [row(s, 10 + k) for k, s in enumerate(range(0, 10))]  # reset to 0
    jump_back = [row(s, 20 + k) for k, s in enumerate(range(3, 8))]  # a jump backwards
    store_batch(before + after)
    store_batch(jump_back)
    assert missing_for_device(db, "dev_a") == 0
    # a gap inside the new epoch is still counted
    store_batch([row(9, 30), row(10, 31)])  # 8 missing after 7
    assert missing_for_device(db, "dev_a") == 1


def test_restart_after_lost_readings_is_not_a_gap(db: psycopg.Connection) -> None:
    store_batch([row(s, k) for k, s in enumerate([500, 501, 502, 2, 3])])  # 0, 1 of the new epoch lost
    assert missing_for_device(db, "dev_a") == 0


def test_wrap_around_is_a_continuation(db: psycopg.Connection) -> None:
    seqs = [WRAP - 3, WRAP - 2, WRAP - 1, 0, 1, 2]
    store_batch(readings(seqs))
    assert missing_for_device(db, "dev_a") == 0
    store_batch(readings([WRAP - 2, 1], start=100, device="dev_b"))  # WRAP-1 and 0 lost over the wrap
    assert missing_for_device(db, "dev_b") == 2


def test_wrap_around_out_of_order_across_batches(db: psycopg.Connection) -> None:
    store_batch(readings([0, 1, 2], start=3))
    store_batch(readings([WRAP - 3, WRAP - 2, WRAP - 1]))
    assert missing_for_device(db, "dev_a") == 0


def test_readings_without_seq_count_nothing(db: psycopg.Connection) -> None:
    store_batch([[*r[:6]] for r in readings([0] * 10)])
    store_batch([row(None, 20), row(5, 21), row(None, 22), row(9, 23)])
    assert missing_for_device(db, "dev_a") == 0


def test_mixed_batch_of_rows_with_and_without_seq(db: psycopg.Connection) -> None:
    report = store_batch([row(0, 0), [*row(None, 1)[:6]], row(2, 2, "dev_b"), row(4, 3, "dev_b")])
    assert report.inserted == 4
    assert missing_for_device(db, "dev_b") == 1


def test_seq_is_stored_through_the_escaped_copy_path(db: psycopg.Connection) -> None:
    store_batch([["dev_a", T0, 230.0, 4.0, 35.0, {"freq": 50.0}, 3], ["dev_a", T0 + 1, 230.0, 4.0, 35.0, None, 6]])
    assert db.execute("SELECT array_agg(seq ORDER BY ts) FROM sensor_readings").fetchone() == ([3, 6],)


def test_many_devices_and_gaps_match_what_is_absent(db: psycopg.Connection) -> None:
    rng = random.Random(3)
    expected = 0
    batch: list[list[Any]] = []
    for d in range(20):
        kept = [s for s in range(300) if rng.random() > 0.1 or s in (0, 299)]
        expected += 300 - len(kept)
        batch += [row(s, s, f"dev_{d:02d}") for s in kept]
    rng.shuffle(batch)
    for k in range(0, len(batch), 500):
        store_batch(batch[k : k + 500])
    store_batch(batch[1000:2000])  # a redelivery in the middle
    assert missing_total(db) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (7, 7), (7.0, 7), (WRAP - 1, WRAP - 1), (None, None)],
)
def test_payload_seq_is_read(value: Any, expected: int | None) -> None:
    payload = b'{"timestamp": 1764000000, "voltage": 230, "current": 4, "temperature": 35'
    payload += b"}" if value is None else f', "seq": {value}}}'.encode()
    result = parse_reading("grid/sensors/dev_a", payload, T0)
    assert isinstance(result, Reading)
    assert result.seq == expected
    assert result.extra is None  # seq is not an extra metric


@pytest.mark.parametrize("value", ["-1", str(WRAP), "1.5", '"7"', "true", "[1]", "1e300"])
def test_bad_seq_is_rejected_with_its_reason(value: str) -> None:
    payload = f'{{"timestamp": 1764000000, "voltage": 230, "current": 4, "temperature": 35, "seq": {value}}}'
    result = parse_reading("grid/sensors/dev_a", payload.encode(), T0)
    assert isinstance(result, Rejection)
    assert result.reason == BAD_SEQ


def test_simulated_payload_carries_seq() -> None:
    result = parse_reading("grid/sensors/dev_a", encode_reading("dev_a", T0, 230.0, 4.0, 35.0, seq=WRAP + 5), T0)
    assert isinstance(result, Reading)
    assert result.seq == 5


def test_bad_seq_row_in_a_batch_becomes_a_dead_letter(db: psycopg.Connection) -> None:
    report = store_batch([row(0, 0), row(-4, 1), row(2, 2)])
    assert (report.inserted, report.dead_letters) == (2, 1)
    assert db.execute("SELECT reason FROM dead_letters").fetchone() == (BAD_SEQ,)


def test_missing_counter_counts_new_gaps_once(db: psycopg.Connection) -> None:
    counter, filled = metrics.ingest().missing, metrics.ingest().filled
    before, filled_before = counter._value.get(), filled._value.get()
    batch = [row(s, s) for s in (0, 1, 5, 6, 9)]  # 3 + 2 missing
    store_batch(batch)
    store_batch(batch)  # redelivered: nothing new
    assert counter._value.get() - before == 5
    store_batch([row(2, 2)])  # a late reading fills one: the counter does not go back; filled counts it
    assert counter._value.get() - before == 5
    assert filled._value.get() - filled_before == 1
    assert missing_for_device(db, "dev_a") == 4


def test_batches_stored_out_of_order_open_and_fill_a_gap_and_net_nothing(db: psycopg.Connection) -> None:
    """Two workers may store a device's batches in the wrong order: the later batch finds a gap
    that the earlier one then fills. Both counters see it; what stays missing is 0."""
    counter, filled = metrics.ingest().missing, metrics.ingest().filled
    before, filled_before = counter._value.get(), filled._value.get()
    store_batch(readings([0]))
    store_batch(readings([3, 4], start=3))
    store_batch(readings([1, 2], start=1))
    assert counter._value.get() - before == filled._value.get() - filled_before == 2
    assert missing_for_device(db, "dev_a") == 0


def test_api_reports_readings_missing_per_device_and_per_hour(db: psycopg.Connection, make_client: ClientFactory) -> None:
    hour = 3600 * (int(T0) // 3600 + 1) - T0  # seconds from T0 to the next full hour
    first = [row(s, s) for s in range(0, 10)] + [row(s, s) for s in range(14, 20)]  # 4 missing, first hour
    second = [row(s, int(hour) + s) for s in (30, 31, 40)]  # 20..29 then 32..39 missing: in the second hour
    store_batch(first + second + readings([0, 1, 2], device="dev_b"))
    client = make_client(read=READER)
    detail = client.get("/devices/dev_a", headers=bearer(READER))
    assert detail.status_code == 200, detail.text
    assert detail.json()["readings_missing"] == 4 + 10 + 8
    listed = client.get("/devices", headers=bearer(READER)).json()["items"]
    assert {d["device_id"]: d["readings_missing"] for d in listed} == {"dev_a": 22, "dev_b": 0}
    start = datetime.fromtimestamp(T0 - T0 % 3600, UTC)
    series = client.get(
        "/devices/dev_a/readings",
        params={"bucket": "1h", "start": start.isoformat(), "end": (start + timedelta(hours=3)).isoformat()},
        headers=bearer(READER),
    )
    assert series.status_code == 200, series.text
    assert [(b["count"], b["missing"]) for b in series.json()["buckets"]] == [(16, 4), (3, 18)]


def test_data_gap_alert_opens_above_the_share_and_resolves(db: psycopg.Connection) -> None:
    kept = [s for s in range(100) if s % 10 != 5]  # 10 % missing
    store_batch([row(s, s) for s in kept] + [row(s, s, "dev_b") for s in range(100)])
    now = T0 + 120
    with db.transaction():
        events = check_gaps(db, share=0.05, window_s=3600, min_missing=5, now=now)
    assert [(e.device_id, e.event, e.metric) for e in events] == [("dev_a", "opened", "data_gap")]
    alert = db.execute("SELECT kind, state, value, round(score::numeric, 3)::float8 FROM alerts").fetchone()
    assert alert == ("data_gap", "open", 10.0, 0.1)
    assert db.execute("SELECT count(*) FROM alert_outbox").fetchone() == (1,)
    with db.transaction():  # the same loss: refreshed, no new event
        assert check_gaps(db, share=0.05, window_s=3600, min_missing=5, now=now + 1) == []
    with db.transaction():  # a stricter minimum count: the loss no longer qualifies, the alert resolves
        events = check_gaps(db, share=0.05, window_s=3600, min_missing=50, now=now + 2)
    assert [(e.device_id, e.event) for e in events] == [("dev_a", "resolved")]
    with db.transaction():  # the window moved past the loss
        assert check_gaps(db, share=0.05, window_s=60, min_missing=5, now=now + 3600) == []


def test_devices_without_seq_get_an_interval_estimate_labelled_as_such(
    db: psycopg.Connection, make_client: ClientFactory
) -> None:
    times = [k for k in range(1200) if not 900 <= k < 960]  # one a second for 20 min, 60 s missing
    store_batch([[*row(None, k, "plain")[:6]] for k in times] + readings([0, 1, 5], device="counted"))
    client = make_client(read=READER)
    listed = {d["device_id"]: d for d in client.get("/devices", headers=bearer(READER)).json()["items"]}
    assert (listed["plain"]["readings_missing"], listed["plain"]["readings_missing_estimate"]) == (0, 60)
    assert (listed["counted"]["readings_missing"], listed["counted"]["readings_missing_estimate"]) == (3, None)
    detail = client.get("/devices/plain", headers=bearer(READER)).json()
    assert detail["readings_missing_estimate"] == 60


def test_concurrent_batches_of_one_device_interleaved_leave_no_false_gap(
    db: psycopg.Connection, migrated_database: str
) -> None:
    """Two workers write interleaved halves of one device's sequence at the same time: the second
    waits for the first's `devices` row lock and recomputes with its readings visible."""
    import threading

    from gridmon.storage.readings import write_readings

    evens = [row(s, s) for s in range(0, 40, 2)]
    odds = [row(s, s) for s in range(1, 40, 2)]
    with psycopg.connect(migrated_database) as first, psycopg.connect(migrated_database) as second:
        write_readings(first, evens)  # uncommitted: holds dev_a's devices row
        done = threading.Event()

        def other() -> None:
            write_readings(second, odds)
            second.commit()
            done.set()

        worker = threading.Thread(target=other)
        worker.start()
        assert not done.wait(1.0)  # blocked behind the first transaction
        first.commit()
        worker.join(10)
    assert done.is_set()
    assert missing_for_device(db, "dev_a") == 0
    assert db.execute("SELECT count(*) FROM sensor_readings").fetchone() == (40,)
