"""The outbox publisher: moves `alert_outbox` rows to Redis, then marks them published.

For each event, in outbox order, one Redis transaction (MULTI/EXEC) does what the original
design did plus a stream:
- `LPUSH alerts:anomalies <json>` (newest first; `LTRIM` to `alerts_list_max`),
- `PUBLISH alerts:anomalies:channel <json>`,
- `XADD alerts:anomalies:stream MAXLEN ~ alerts_stream_maxlen` with fields `event_id`, `event`,
  `data` (the JSON), for consumers that must not miss alerts while disconnected.

Only after Redis accepted a batch are its rows marked `published_at`, so a Redis outage leaves
them pending and the next drain (every scan, and after ingest batches) publishes them. If the
process dies between EXEC and the commit, the batch is published again: delivery is
at-least-once and consumers drop duplicates by `event_id`. Drainers serialise on an advisory
lock so events leave in order.
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
from redis.backoff import NoBackoff
from redis.retry import Retry

from gridmon import db
from gridmon.config import get_settings

log = logging.getLogger(__name__)

LIST_KEY = "alerts:anomalies"
CHANNEL = "alerts:anomalies:channel"
STREAM_KEY = "alerts:anomalies:stream"

_DRAIN_LOCK = (0x67726D6E, 1)  # ("grmn", 1): the two-int advisory key space, apart from alert keys
_BACKOFF_S = 5.0  # after a Redis failure, opportunistic drains wait this long before trying again
_IDLE_CHECK_S = 5.0  # opportunistic drains with nothing known to be pending look at most this often


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did. `error` names the failing service when it stopped early."""

    published: int
    error: str | None = None


def message_bytes(event_id: int, payload: dict[str, Any]) -> bytes:
    """The JSON published for one outbox row (the payload plus its `event_id`)."""
    return orjson.dumps({**payload, "event_id": event_id})


class Publisher:
    """Drains the outbox to one Redis. One per process (see `get_publisher`)."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        list_max: int | None = None,
        stream_maxlen: int | None = None,
        batch_size: int = 500,
    ) -> None:
        settings = get_settings()
        self.redis_url = redis_url or settings.redis_url
        self.list_max = list_max or settings.alerts_list_max
        self.stream_maxlen = stream_maxlen or settings.alerts_stream_maxlen
        self.batch_size = batch_size
        # No client-side retries: an outage must cost one short timeout, not seconds of backoff
        # inside an ingest batch. The outbox is the retry.
        self._redis = redis.Redis.from_url(
            self.redis_url, socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        self._retry_at = 0.0
        self._next_idle_check = 0.0
        self.pending = False

    def close(self) -> None:
        self._redis.close()

    def _publish(self, rows: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for event_id, event, payload in rows:
            body = message_bytes(event_id, payload)
            pipe.lpush(LIST_KEY, body)
            pipe.publish(CHANNEL, body)
            pipe.xadd(
                STREAM_KEY,
                {"event_id": str(event_id), "event": event, "data": body},
                maxlen=self.stream_maxlen,
                approximate=True,
            )
        pipe.ltrim(LIST_KEY, 0, self.list_max - 1)
        pipe.execute()

    def _drain_batch(self, wait: bool) -> tuple[int, str | None]:
        """Publish one batch. Returns (published, None), (-pending, error) when Redis failed, or
        (-1, None) when another drainer holds the lock and `wait` is False."""
        with db.connection() as conn:
            if wait:
                conn.execute("SET LOCAL lock_timeout = '10s'")
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _DRAIN_LOCK)
            else:
                got = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", _DRAIN_LOCK).fetchone()
                if not (got and got[0]):
                    return -1, None
            rows = conn.execute(
                "SELECT id, event, payload FROM alert_outbox WHERE published_at IS NULL ORDER BY id LIMIT %s",
                (self.batch_size,),
            ).fetchall()
            if not rows:
                return 0, None
            try:
                self._publish(rows)
            except redis.RedisError as exc:
                where = self.redis_url.split("@")[-1]
                return -len(rows), f"Redis unreachable at {where}: {exc} (set GRIDMON_REDIS_URL)"
            conn.execute("UPDATE alert_outbox SET published_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
        return len(rows), None

    def drain(self, *, wait: bool = True) -> DrainResult:
        """Publish every pending outbox row (in batches); stops at the first Redis failure.

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
                self._retry_at = time.monotonic() + _BACKOFF_S
                log.warning("alert outbox not drained, events stay pending pending=%d error=%s", -count, error)
                return DrainResult(published, error)
            if count < 0:
                self.pending = True
                return DrainResult(published)
            published += count
            if count < self.batch_size:
                self.pending = False
                if published:
                    log.info("alert events published count=%d", published)
                return DrainResult(published)

    def drain_if_due(self, wrote_events: bool) -> DrainResult | None:
        """The ingest hook's drain: after it wrote events, or when something may be pending, or
        every few seconds; never while Redis is known to be down, never waiting for another
        drainer. Keeps the hot path free of needless queries and waits."""
        now = time.monotonic()
        if now < self._retry_at:
            return None
        if not (wrote_events or self.pending or now >= self._next_idle_check):
            return None
        self._next_idle_check = now + _IDLE_CHECK_S
        return self.drain(wait=False)


@functools.lru_cache(maxsize=1)
def get_publisher() -> Publisher:
    """The process's publisher (settings read once)."""
    return Publisher()
