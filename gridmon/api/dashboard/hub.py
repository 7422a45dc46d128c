"""The live hub: one Redis subscription and one summary query per API process, fanned out to
every open dashboard stream.

However many browsers are watching, the process subscribes to `alerts:anomalies:channel` once
and reads the fleet summary once a second. The hub starts with its first subscriber and stops
with its last, so an API nobody watches costs nothing.

Events (see docs/dashboard.md):
- `alert`: an alert message exactly as published by `gridmon.jobs.publish`;
- `summary`: `gridmon.storage.fleet.FleetSummary.to_dict()`, once a second;
- `status`: which backing service the hub cannot reach right now (`redis`, `database`), sent
  when that changes;
- `resync`: the client may have missed alerts (the hub reconnected to Redis, or the client fell
  too far behind) and should re-read `GET /alerts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import redis
import sqlalchemy.exc

from gridmon.domain.alerts import ANOMALIES
from gridmon.redis_client import async_redis_client, redis_where
from gridmon.storage import db
from gridmon.storage.fleet import FleetSummary, fetch_summary

log = logging.getLogger(__name__)

RECONNECT_S = 2.0
"""Pause before subscribing again after Redis failed."""

_DATABASE_ERRORS = (psycopg.Error, sqlalchemy.exc.SQLAlchemyError, db.DatabaseUnavailable, OSError)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One Server-Sent Event."""

    name: str
    data: dict[str, Any]
    id: str | None = None

    def encode(self) -> bytes:
        """The event in `text/event-stream` framing (orjson output is a single line)."""
        head = f"event: {self.name}\n" + (f"id: {self.id}\n" if self.id else "")
        return head.encode() + b"data: " + orjson.dumps(self.data) + b"\n\n"


RESYNC = LiveEvent("resync", {"reason": "alerts may have been missed; re-read GET /alerts"})


def read_summary() -> FleetSummary:
    """The summary from the process's database pool (run in a worker thread)."""
    with db.connection() as conn:
        return fetch_summary(conn)


def alert_event(raw: bytes | str) -> LiveEvent | None:
    """The `alert` event for one channel message; None (and a warning) for a malformed one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("episode_id"), int):
        log.warning("alert message ignored: not an alert object bytes=%d", len(raw))
        return None
    event_id = data.get("event_id")
    return LiveEvent("alert", data, str(event_id) if isinstance(event_id, int) else None)


class LiveHub:
    """Fans alert messages and the per-second summary out to subscriber queues."""

    def __init__(
        self,
        redis_url: str,
        *,
        summary: Callable[[], FleetSummary] = read_summary,
        interval_s: float = 1.0,
        queue_size: int = 256,
    ) -> None:
        self.redis_url = redis_url
        self.summary = summary
        self.interval_s = interval_s
        self.queue_size = queue_size
        self.latest_summary: LiveEvent | None = None
        self.problems: dict[str, str] = {}
        self._subscribers: set[asyncio.Queue[LiveEvent]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        """Whether the Redis and summary loops are running."""
        return bool(self._tasks)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        """A queue that receives every event from now on (the latest summary first)."""
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(self.queue_size)
        if self.latest_summary is not None:
            queue.put_nowait(self.latest_summary)
        if self.problems:
            queue.put_nowait(self._status_event())
        self._subscribers.add(queue)
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._alerts_loop()), asyncio.create_task(self._summary_loop())]
            log.info("live hub started")
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
            if not self._subscribers:
                # Synchronous on purpose: this runs while the stream is being cancelled, where
                # any await would be cancelled again at once.
                self._cancel()

    def _cancel(self) -> list[asyncio.Task[None]]:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            self.latest_summary = None
            self.problems.clear()
            log.info("live hub stopped")
        return tasks

    async def stop(self) -> None:
        """Stop the background loops and wait for them (they start again with the next subscriber)."""
        for task in self._cancel():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def broadcast(self, event: LiveEvent) -> None:
        """Queue `event` for every subscriber. A subscriber too far behind loses its backlog and
        gets `resync` instead: the alerts table is the truth it can re-read."""
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    def _status_event(self) -> LiveEvent:
        return LiveEvent("status", {"ok": not self.problems, "problems": dict(self.problems)})

    def _set_problem(self, service: str, problem: str | None) -> None:
        before = self.problems.get(service)
        if problem == before:
            return
        if problem is None:
            del self.problems[service]
            log.info("live hub: %s reachable again", service)
        else:
            self.problems[service] = problem
            log.warning("live hub: %s unreachable error=%s", service, problem)
        self.broadcast(self._status_event())

    async def _alerts_loop(self) -> None:
        missed = False  # only a resubscription can have missed messages, not the first one
        while True:
            client = async_redis_client(self.redis_url)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                try:
                    await pubsub.subscribe(ANOMALIES.channel)
                    self._set_problem("redis", None)
                    if missed:
                        self.broadcast(RESYNC)
                    missed = True
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            event = alert_event(message["data"])
                            if event is not None:
                                self.broadcast(event)
                finally:
                    await pubsub.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
            except (redis.RedisError, OSError) as exc:
                where = redis_where(self.redis_url)
                self._set_problem("redis", f"Redis unreachable at {where}: {exc} (GRIDMON_REDIS_URL)")
                await asyncio.sleep(RECONNECT_S)
            except Exception:  # a bug must not silence alerts for good: log it, subscribe again
                log.exception("live alert relay failed")
                self._set_problem("redis", "alert relay failed; see the API log")
                await asyncio.sleep(RECONNECT_S)
            finally:
                await client.aclose()  # type: ignore[attr-defined]

    async def _summary_loop(self) -> None:
        next_at = time.monotonic()
        while True:
            try:
                summary = await asyncio.to_thread(self.summary)
            except _DATABASE_ERRORS as exc:
                text = str(exc).strip()
                first_line = text.splitlines()[0] if text else type(exc).__name__
                self._set_problem("database", f"database unreachable: {first_line} (GRIDMON_DATABASE_URL)")
            except Exception as exc:  # a bug must not end every open stream: log it, keep going
                log.exception("live summary failed")
                self._set_problem("database", f"summary failed: {type(exc).__name__}")
            else:
                self._set_problem("database", None)
                self.latest_summary = LiveEvent("summary", summary.to_dict())
                self.broadcast(self.latest_summary)
            next_at = max(next_at + self.interval_s, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())
