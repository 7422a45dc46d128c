"""The bridge's batcher: bounded batches, acknowledgement only after hand-off."""

from __future__ import annotations

import threading
import time

from gridmon.bridge.batcher import Batch, Batcher


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[Batch] = []
        self.acked: list[tuple[int, int, int]] = []
        self.events: list[str] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def send(self, batch: Batch) -> None:
        while self.fail_times:  # the bridge's send retries until accepted; emulate a slow acceptance
            self.fail_times -= 1
            time.sleep(0.05)
        with self.lock:
            self.batches.append(batch)
            self.events.append(f"send:{len(batch)}")

    def ack(self, acks: list[tuple[int, int, int]]) -> None:
        with self.lock:
            self.acked.extend(acks)
            self.events.append(f"ack:{len(acks)}")


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_count_bound_and_ack_after_send() -> None:
    rec = Recorder()
    batcher = Batcher(rec.send, rec.ack, max_items=100, max_age_s=10.0, idle_s=10.0)
    batcher.start()
    for k in range(250):
        batcher.add_reading(("d", float(k)), (1, k + 1, 1))
    assert wait_for(lambda: len(rec.batches) == 2)
    assert [len(b) for b in rec.batches] == [100, 100]
    assert rec.events[:4] == ["send:100", "ack:100", "send:100", "ack:100"]
    assert batcher.close()
    assert [len(b) for b in rec.batches] == [100, 100, 50]
    assert [mid for _, mid, _ in rec.acked] == list(range(1, 251))


def test_age_bound() -> None:
    rec = Recorder()
    batcher = Batcher(rec.send, rec.ack, max_items=1000, max_age_s=0.05, idle_s=10.0)
    batcher.start()
    for k in range(10):
        batcher.add_reading(("d", float(k)), (1, k + 1, 1))
        time.sleep(0.001)
    assert wait_for(lambda: len(rec.batches) == 1, timeout=2.0)
    assert len(rec.batches[0]) == 10
    batcher.close()


def test_idle_flush_when_stream_pauses() -> None:
    rec = Recorder()
    batcher = Batcher(rec.send, rec.ack, max_items=1000, max_age_s=30.0, idle_s=0.01)
    batcher.start()
    for k in range(20):
        batcher.add_reading(("d", float(k)), (1, k + 1, 1))
    assert wait_for(lambda: len(rec.acked) == 20, timeout=2.0)
    batcher.close()


def test_dead_letters_travel_with_readings_and_are_acked() -> None:
    rec = Recorder()
    batcher = Batcher(rec.send, rec.ack, max_items=10, max_age_s=10.0, idle_s=10.0)
    batcher.start()
    for k in range(5):
        batcher.add_reading(("d", float(k)), (1, 2 * k + 1, 1))
        batcher.add_dead(["dead", k], (1, 2 * k + 2, 1))
    assert wait_for(lambda: len(rec.batches) == 1)
    assert len(rec.batches[0].readings) == 5 and len(rec.batches[0].dead) == 5
    assert sorted(mid for _, mid, _ in rec.acked) == list(range(1, 11))
    batcher.close()


def test_nothing_acked_before_send_returns() -> None:
    rec = Recorder(fail_times=5)
    batcher = Batcher(rec.send, rec.ack, max_items=10, max_age_s=10.0, idle_s=10.0)
    batcher.start()
    for k in range(10):
        batcher.add_reading(("d", float(k)), (1, k + 1, 1))
    time.sleep(0.1)  # send is still "retrying"
    assert rec.acked == []
    assert wait_for(lambda: len(rec.acked) == 10)
    batcher.close()


def test_qos0_messages_need_no_ack() -> None:
    rec = Recorder()
    batcher = Batcher(rec.send, rec.ack, max_items=3, max_age_s=10.0, idle_s=10.0)
    batcher.start()
    for k in range(3):
        batcher.add_reading(("d", float(k)), None)
    assert wait_for(lambda: len(rec.batches) == 1)
    assert rec.acked == []
    batcher.close()


def test_backpressure_blocks_producer_when_ready_queue_full() -> None:
    gate = threading.Event()
    sent: list[int] = []

    def slow_send(batch: Batch) -> None:
        gate.wait(5)
        sent.append(len(batch))

    batcher = Batcher(slow_send, lambda acks: None, max_items=10, max_age_s=10.0, idle_s=10.0, max_ready=2)
    batcher.start()
    added = []

    def produce() -> None:
        for k in range(100):
            batcher.add_reading(("d", float(k)), None)
            added.append(k)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(0.2)
    # one batch in send, two ready, one filling: the producer is held well before 100
    assert len(added) < 50
    gate.set()
    producer.join(5)
    assert len(added) == 100
    assert batcher.close()
    assert sum(sent) == 100
