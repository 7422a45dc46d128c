"""Stopping without stranding readings: wait for the ingest queue to drain before its workers stop.

`gridmon up` stops the bridge first (it hands its last batch to the Celery broker), then calls
`IngestDrain.wait` before it stops the ingest worker: the wait ends when the `ingest` queue is
empty and the ingest worker holds no task (reserved or running), or after `timeout_s`. Whatever
is still queued then stays in the broker and is written by the next start's ingest worker;
`IngestDrain.report`, called once the worker has stopped, says how much that is.

Counting: the queue length comes from the broker (`queue_declare(passive=True)`, any transport).
On a Redis broker the queued messages are also read without being taken, so the count is in
readings and leaves out other tasks sharing the queue (the beat heartbeat); on RabbitMQ it is
in messages.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
from amqp.exceptions import ChannelError

log = logging.getLogger(__name__)

QUEUE = "ingest"
NOT_FOUND = "404"
INGEST_TASK = "workers.ingest.ingest_batch"


@dataclass(frozen=True)
class Backlog:
    """What waits in the ingest queue: messages, and the readings in them when countable."""

    messages: int
    readings: int | None = None
    batches: int | None = None

    @property
    def empty(self) -> bool:
        return (self.batches if self.batches is not None else self.messages) == 0

    def describe(self) -> str:
        if self.readings is not None and self.batches is not None:
            return f"{plural(self.readings, 'reading')} in {plural(self.batches, 'ingest batch', 'ingest batches')}"
        return plural(self.messages, "ingest message")


def plural(n: int, one: str, many: str | None = None) -> str:
    """`1 reading`, `2 readings` (with thousands separators)."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _readings_in(raw: bytes) -> int | None:
    """Readings in one queued message of a Redis broker; None if it is no ingest batch."""
    try:
        envelope = orjson.loads(raw)
        if (envelope.get("headers") or {}).get("task") != INGEST_TASK:
            return None
        body = envelope["body"]
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = orjson.loads(body)[0]
        return len(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class IngestQueue:
    """The `ingest` queue on the Celery broker `up` gave its children, and its worker."""

    def __init__(self, worker: str | None = None, app: Any = None):
        self.worker = worker or f"ingest@{socket.gethostname()}"
        self._app = app

    @property
    def app(self) -> Any:
        if self._app is None:
            from gridmon.celery import make_app

            self._app = make_app()  # after `up` set the environment: the right broker
        return self._app

    def backlog(self) -> Backlog:
        with self.app.connection_for_read() as conn:
            channel = conn.default_channel
            try:
                messages = int(channel.queue_declare(queue=QUEUE, passive=True).message_count)
            except ChannelError as exc:
                if NOT_FOUND not in (str(getattr(exc, "code", "")), str(getattr(exc, "reply_code", ""))):
                    raise
                return Backlog(0, 0, 0)  # never declared, or (Redis) an empty list: nothing queued
            client = getattr(channel, "client", None)
            if conn.transport.driver_type != "redis" or client is None or messages == 0:
                return Backlog(messages, 0 if messages == 0 else None, 0 if messages == 0 else None)
            counts = [_readings_in(raw) for raw in client.lrange(QUEUE, 0, -1)]
        batches = [n for n in counts if n is not None]
        return Backlog(messages, sum(batches), len(batches))

    def busy(self) -> bool:
        """Whether the ingest worker holds a task (prefetched or running); False if it is silent."""
        inspect = self.app.control.inspect(destination=[self.worker], timeout=1.0, limit=1)
        return any(bool(held) and any(held.values()) for held in (inspect.active(), inspect.reserved()))


class IngestDrain:
    """The stop plan's hooks around the ingest worker (see the module docstring)."""

    def __init__(self, queue: IngestQueue, timeout_s: float, poll_s: float = 0.2):
        self.queue = queue
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.left: Backlog | None = None

    def wait(self) -> Backlog | None:
        """Block until the queue is drained and the worker idle, or `timeout_s` passed (None when
        the broker cannot be asked: then there is nothing to wait for)."""
        deadline = time.monotonic() + self.timeout_s
        announced = False
        while True:
            try:
                backlog = self.queue.backlog()
                if backlog.empty and not self.queue.busy():
                    return backlog
            except Exception as exc:  # the broker may be the thing that failed
                log.warning("could not watch the ingest queue: %s", exc)
                return None
            if time.monotonic() >= deadline:
                log.warning("the ingest queue did not drain in %.0f s (%s left)", self.timeout_s, backlog.describe())
                return backlog
            if not announced and not backlog.empty:
                log.info("waiting up to %.0f s for %s to be written …", self.timeout_s, backlog.describe())
                announced = True
            time.sleep(self.poll_s)

    def report(self) -> Backlog | None:
        """After the ingest worker stopped: say what stays queued for the next start."""
        try:
            self.left = self.queue.backlog()
        except Exception as exc:  # the broker may be the thing that failed
            log.warning("could not count the ingest queue: %s", exc)
            return None
        if self.left.empty:
            log.info("ingest queue drained: every reading handed over is stored")
        else:
            log.warning("%s stay queued; they will be written at the next start", self.left.describe())
        return self.left
