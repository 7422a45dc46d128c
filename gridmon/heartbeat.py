"""Liveness heartbeats in Redis: `gridmon:heartbeat:<component>[:<name>]` = epoch seconds.

Besides the per-component heartbeats (with a TTL: /ready reads them), the bridges keep one mark
without a TTL, `gridmon:pipeline:alive`: the last moment any bridge was connected and moving
readings. A bridge that finds the mark older than the gap threshold when it marks again — after
a restart, a broker outage, a host that slept — knows nobody was listening in between and queues
that gap on `gridmon:pipeline:gaps`; the scan stores queued gaps as pipeline outages
(`gridmon.jobs.outages`), and a mark that is too old *now* means the pipeline is down now.
"""

from __future__ import annotations

import functools
import logging

import orjson
import redis

from gridmon.redis_client import redis_client

log = logging.getLogger(__name__)

PREFIX = "gridmon:heartbeat:"
BRIDGE = "bridge"
BEAT = "beat"
TTL_S = 120
ALIVE_KEY = "gridmon:pipeline:alive"
GAPS_KEY = "gridmon:pipeline:gaps"


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


def mark_alive(now: float, source: str, gap_s: float) -> tuple[float, float] | None:
    """A bridge is listening at `now`. If the previous mark is more than `gap_s` older, nobody
    was listening in between: that gap is queued (and returned). Redis errors are logged only."""
    try:
        client = _client()
        previous = client.getset(ALIVE_KEY, f"{now:.3f}")
        if previous is None or now - float(previous) <= gap_s:
            return None
        gap = (float(previous), now)
        client.rpush(GAPS_KEY, orjson.dumps({"source": source, "start": gap[0], "end": gap[1]}))
        log.info("pipeline was not listening for %.0f s (heartbeat gap); recorded", gap[1] - gap[0])
        return gap
    except (redis.RedisError, ValueError) as exc:
        log.warning("pipeline mark not written error=%s", exc)
        return None


def down_since(now: float, gap_s: float) -> float | None:
    """When the last bridge stopped listening, if none has for more than `gap_s`; None when one
    is listening, when no bridge ever marked, or when Redis does not answer."""
    try:
        value = _client().get(ALIVE_KEY)
    except redis.RedisError as exc:
        log.warning("pipeline mark unreadable error=%s", exc)
        return None
    if value is None:
        return None
    last = float(value)
    return last if now - last > gap_s else None


def queued_gaps(limit: int = 1000) -> tuple[list[tuple[str, float, float]], int]:
    """Gaps the bridges queued, oldest first — (source, start, end) — and how many records were
    read (malformed ones are logged and skipped). Remove them with `drop_gaps` once stored."""
    try:
        raw = _client().lrange(GAPS_KEY, 0, limit - 1)
    except redis.RedisError as exc:
        log.warning("pipeline gaps unreadable error=%s", exc)
        return [], 0
    gaps = []
    for item in raw:
        try:
            doc = orjson.loads(item)
            gaps.append((str(doc["source"]), float(doc["start"]), float(doc["end"])))
        except (ValueError, KeyError, TypeError):
            log.warning("malformed pipeline gap record skipped: %r", item[:200])
    return gaps, len(raw)


def drop_gaps(count: int) -> None:
    """Remove the `count` oldest queued gaps (after they were stored)."""
    if count > 0:
        try:
            _client().ltrim(GAPS_KEY, count, -1)
        except redis.RedisError as exc:
            log.warning("pipeline gaps not trimmed error=%s", exc)
