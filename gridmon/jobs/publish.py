"""The publish job: drains the outbox (`gridmon.storage.outbox`) to its sinks — Redis, and
Alertmanager when `GRIDMON_ALERTMANAGER_URL` is set (`gridmon.jobs.alertmanager`) — marking each
row delivered per sink only after that sink's target accepted it.

One publisher for every topic (`gridmon.domain.alerts.TOPICS`: anomaly alerts and maintenance
notifications). For each row, in outbox order, one Redis transaction (MULTI/EXEC) does:
- `LPUSH <topic list> <json>` (newest first; `LTRIM` to `alerts_list_max`),
- `PUBLISH <topic channel> <json>`,
- `XADD <topic stream> MAXLEN ~ alerts_stream_maxlen` with fields `event_id`, `event`, `data`
  (the JSON), for consumers that must not miss messages while disconnected.

Only after Redis accepted a batch are its rows marked `published_at`, so a Redis outage leaves
them pending and the next drain (every scan and prediction run, and after ingest batches)
publishes them. If the process dies between EXEC and the commit, the batch is published again:
delivery is at-least-once and consumers drop duplicates by `event_id`. Drainers serialise on an
advisory lock so rows leave in order. The Alertmanager sink works the same way on its own column
and lock, so Redis down does not hold Alertmanager back, nor the other way round.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import redis

from gridmon.config import get_settings
from gridmon.domain.alerts import ANOMALIES, TOPICS
from gridmon.jobs.alertmanager import AlertmanagerSink
from gridmon.redis_client import redis_client, redis_where
from gridmon.storage import db, outbox

log = logging.getLogger(__name__)

# The anomaly topic's keys, as most consumers (and the dashboard) know them.
LIST_KEY = ANOMALIES.list_key
CHANNEL = ANOMALIES.channel
STREAM_KEY = ANOMALIES.stream_key


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did: rows published to Redis, rows delivered to Alertmanager; each `…error`
    names the failing service when that sink stopped early."""

    published: int
    error: str | None = None
    alertmanager: int = 0
    alertmanager_error: str | None = None


def message_bytes(event_id: int, payload: dict[str, Any]) -> bytes:
    """The JSON published for one outbox row (the payload plus its `event_id`)."""
    return orjson.dumps({**payload, "event_id": event_id})


def sink_names() -> tuple[str, ...]:
    """The outbox sinks this configuration delivers to (what pruning waits for)."""
    if get_settings().alertmanager_url:
        return (outbox.REDIS, outbox.ALERTMANAGER)
    return (outbox.REDIS,)


class Publisher:
    """Drains the outbox to one Redis (and Alertmanager when configured). One per process (see `get_publisher`)."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        client: redis.Redis | None = None,
        list_max: int | None = None,
        stream_maxlen: int | None = None,
        batch_size: int = 500,
    ) -> None:
        settings = get_settings()
        self.redis_url = redis_url or settings.redis_url
        self.list_max = list_max or settings.alerts_list_max
        self.stream_maxlen = stream_maxlen or settings.alerts_stream_maxlen
        self.backoff_s = settings.publish_backoff_s
        self.idle_check_s = settings.publish_idle_check_s
        self.batch_size = batch_size
        # An outage must cost one short timeout, not seconds of retries inside an ingest batch:
        # the outbox is the retry.
        self._owned = client is None
        self._redis = client if client is not None else redis_client(self.redis_url)
        self._retry_at = 0.0
        self._next_idle_check = 0.0
        self.pending = False
        self.alertmanager = AlertmanagerSink(settings) if settings.alertmanager_url else None

    def close(self) -> None:
        if self._owned:
            self._redis.close()
        if self.alertmanager is not None:
            self.alertmanager.close()

    def _publish(self, rows: Sequence[outbox.PendingRow]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        lists = set()
        for event_id, topic_name, event, payload in rows:
            topic = TOPICS[topic_name]
            body = message_bytes(event_id, payload)
            pipe.lpush(topic.list_key, body)
            pipe.publish(topic.channel, body)
            pipe.xadd(
                topic.stream_key,
                {"event_id": str(event_id), "event": event, "data": body},
                maxlen=self.stream_maxlen,
                approximate=True,
            )
            lists.add(topic.list_key)
        for key in sorted(lists):
            pipe.ltrim(key, 0, self.list_max - 1)
        pipe.execute()

    def _drain_batch(self, wait: bool) -> tuple[int, str | None]:
        """Publish one batch. Returns (published, None), (-pending, error) when Redis failed, or
        (-1, None) when another drainer holds the lock and `wait` is False."""
        with db.connection() as conn:
            if not outbox.lock_for_drain(conn, wait=wait):
                return -1, None
            rows = outbox.pending(conn, self.batch_size)
            if not rows:
                return 0, None
            try:
                self._publish(rows)
            except redis.RedisError as exc:
                where = redis_where(self.redis_url)
                return -len(rows), f"Redis unreachable at {where}: {exc} (set GRIDMON_REDIS_URL)"
            outbox.mark_published(conn, [row[0] for row in rows])
        return len(rows), None

    def drain(self, *, wait: bool = True) -> DrainResult:
        """Deliver every pending outbox row to each sink (see `drain_redis`)."""
        result = self.drain_redis(wait=wait)
        if self.alertmanager is None:
            return result
        sent, error = self.alertmanager.drain(wait=wait)
        return DrainResult(result.published, result.error, sent, error)

    def drain_redis(self, *, wait: bool = True) -> DrainResult:
        """Publish every pending outbox row to Redis (in batches); stops at the first Redis failure.

        With `wait` False (the ingest path) a drain already running elsewhere is not waited
        for: this publisher stays `pending` and looks again on its next opportunity.
        """
        published = 0
        while True:
            try:
                count, error = self._drain_batch(wait)
            except psycopg.errors.LockNotAvailable:
                count, error = -1, None
            if error is not None:
                self.pending = True
                self._retry_at = time.monotonic() + self.backoff_s
                log.warning("outbox not drained, events stay pending pending=%d error=%s", -count, error)
                return DrainResult(published, error)
            if count < 0:
                self.pending = True
                return DrainResult(published)
            published += count
            if count < self.batch_size:
                self.pending = False
                if published:
                    log.info("outbox events published count=%d", published)
                return DrainResult(published)

    def drain_if_due(self, wrote_events: bool) -> DrainResult | None:
        """The ingest path's drain: after it wrote events, or when something may be pending, or
        every few seconds; never while a sink's target is known to be down, never waiting for
        another drainer. Keeps the hot path free of needless queries and waits."""
        result = self._redis_drain_if_due(wrote_events)
        if self.alertmanager is None or not self.alertmanager.due(wrote_events):
            return result
        sent, error = self.alertmanager.drain(wait=False)
        base = result or DrainResult(0)
        return DrainResult(base.published, base.error, sent, error)

    def _redis_drain_if_due(self, wrote_events: bool) -> DrainResult | None:
        now = time.monotonic()
        if now < self._retry_at:
            return None
        if not (wrote_events or self.pending or now >= self._next_idle_check):
            return None
        self._next_idle_check = now + self.idle_check_s
        return self.drain_redis(wait=False)


@functools.lru_cache(maxsize=1)
def get_publisher() -> Publisher:
    """The process's publisher (settings read once)."""
    return Publisher()


def publish() -> DrainResult:
    """The job: drain everything pending now to every sink, waiting for another drainer if one is running."""
    return get_publisher().drain()
