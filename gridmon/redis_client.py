"""The one way gridmon opens Redis: the outbox publisher, heartbeats, readiness checks, `gridmon up`
and the dashboard's live relay all get their client here.

Clients fail fast: short socket timeouts and, unless asked otherwise, no client-side retries —
every caller has its own retry (the outbox keeps events, a heartbeat is written again in a few
seconds, a readiness check is asked again), and a retry loop inside an ingest batch or a health
probe would only turn an outage into seconds of waiting.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gridmon.config import get_settings

TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0


def redis_client(
    url: str | None = None, *, timeout_s: float = TIMEOUT_S, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> redis.Redis:
    """A client for `url` (default GRIDMON_REDIS_URL) that fails within the timeouts, without retries."""
    return redis.Redis.from_url(
        url or get_settings().redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def async_redis_client(url: str | None = None, *, connect_timeout_s: float = TIMEOUT_S) -> aioredis.Redis:
    """An asyncio client for long-lived subscriptions (no read timeout; a health check every 15 s)."""
    return aioredis.Redis.from_url(
        url or get_settings().redis_url, socket_connect_timeout=connect_timeout_s, health_check_interval=15
    )


def redis_where(url: str) -> str:
    """host:port of a Redis URL, without credentials (for error messages and logs)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"
