"""Micro-batching with acknowledge-after-handoff.

MQTT messages are decoded on the network thread and appended here. A batch is cut when it holds
`max_items` messages, when its oldest message is `max_age_s` old, or when no message arrived for
`idle_s` (the stream paused: a broker that allows only a few unacknowledged messages in flight —
Mosquitto's default is 20 — stops sending until it sees acknowledgements, so waiting for the
batch to fill or age would only stall it); a flusher thread hands it to `send`
(which returns only once the Celery broker accepted it, retrying while it cannot) and only then
acknowledges the batch's MQTT messages. A message is never acknowledged before the batch that
carries it was accepted, so a crash at any point leaves it unacknowledged in the broker session,
to be delivered again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Ack = tuple[int, int, int]  # (connection generation, MQTT message id, qos)


@dataclass(slots=True)
class Batch:
    """Readings, dead letters and device status events (Sparkplug births and deaths) of one
    hand-off, with the MQTT messages to acknowledge after it."""

    readings: list[Any] = field(default_factory=list)
    dead: list[Any] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    first_at: float = 0.0
    status: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.readings) + len(self.dead) + len(self.status)


SendFn = Callable[[Batch], None]
AckFn = Callable[[list[Ack]], None]


class Batcher:
    """Thread-safe accumulator with one flusher thread (count- and age-bounded batches)."""

    def __init__(
        self, send: SendFn, ack: AckFn, *, max_items: int, max_age_s: float, idle_s: float = 0.005, max_ready: int = 4
    ):
        self._send = send
        self._ack = ack
        self._max_items = max_items
        self._max_age_s = max_age_s
        self._idle_s = min(idle_s, max_age_s)
        self._last_add = 0.0
        # Backpressure: with this many full batches waiting, add() blocks the network thread and
        # the MQTT broker keeps the rest (it is the durable buffer, not this process).
        self._max_ready = max_ready
        self._current = Batch()
        self._ready: deque[Batch] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="gridmon-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add_reading(self, reading: Any, ack: Ack | None) -> None:
        with self._cond:
            batch = self._open_batch()
            batch.readings.append(reading)
            self._after_add(batch, ack)

    def add_dead(self, dead: Any, ack: Ack | None) -> None:
        with self._cond:
            batch = self._open_batch()
            batch.dead.append(dead)
            self._after_add(batch, ack)

    def add_status(self, status: Any, ack: Ack | None) -> None:
        with self._cond:
            batch = self._open_batch()
            batch.status.append(status)
            self._after_add(batch, ack)

    def _open_batch(self) -> Batch:
        while len(self._ready) >= self._max_ready and not self._closing:
            self._cond.wait(0.5)
        batch = self._current
        if not len(batch):
            batch.first_at = time.monotonic()
        return batch

    def _after_add(self, batch: Batch, ack: Ack | None) -> None:
        self._last_add = time.monotonic()
        if ack is not None:
            batch.acks.append(ack)
        if len(batch) >= self._max_items:
            self._ready.append(batch)
            self._current = Batch()
            self._cond.notify_all()

    def _take(self) -> Batch | None:
        """The next due batch: a full one, or the current one once it is old enough or closing."""
        with self._cond:
            while True:
                if self._ready:
                    batch = self._ready.popleft()
                    self._cond.notify_all()
                    return batch
                if len(self._current):
                    now = time.monotonic()
                    age_left = self._max_age_s - (now - self._current.first_at)
                    idle_left = self._idle_s - (now - self._last_add)
                    if age_left <= 0 or idle_left <= 0 or self._closing:
                        batch, self._current = self._current, Batch()
                        return batch
                    self._cond.wait(min(age_left, idle_left))
                elif self._closing:
                    return None
                else:
                    self._cond.wait(0.5)

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._send(batch)  # returns once the Celery broker accepted it
            if batch.acks:
                self._ack(batch.acks)

    def close(self, timeout: float = 30.0) -> bool:
        """Hand over and acknowledge what is buffered; True when everything was flushed."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()
