"""Liveness heartbeats in Redis: `gridmon:heartbeat:<component>[:<name>]` = epoch seconds."""

from __future__ import annotations

import functools
import logging

import redis

from gridmon.redis_client import redis_client

log = logging.getLogger(__name__)

PREFIX = "gridmon:heartbeat:"
BRIDGE = "bridge"
BEAT = "beat"
TTL_S = 120


def bridge_key(client_id: str) -> str:
    return f"{PREFIX}{BRIDGE}:{client_id}"


def beat_key() -> str:
    return f"{PREFIX}{BEAT}"


@functools.lru_cache(maxsize=1)
def _client() -> redis.Redis:
    return redis_client(connect_timeout_s=2.0)


def write_heartbeat(key: str, now: float, component: str) -> bool:
    """Set the heartbeat; a Redis outage is logged, never raised (the heartbeat is advisory)."""
    try:
        _client().set(key, f"{now:.3f}", ex=TTL_S)
        return True
    except redis.RedisError as exc:
        log.warning("heartbeat not written component=%s error=%s", component, exc)
        return False


def read_heartbeats(pattern: str = PREFIX + "*") -> dict[str, float]:
    """All heartbeats (key → epoch seconds)."""
    client = _client()
    keys = list(client.scan_iter(match=pattern))
    values = client.mget(keys) if keys else []
    return {k.decode(): float(v) for k, v in zip(keys, values, strict=True) if v is not None}
