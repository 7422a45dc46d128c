"""Readiness checks behind `GET /ready`: is every part of the pipeline there and alive?

Each check is small, bounded by a short timeout, and reports `ok` plus a one-line detail naming
the setting to fix when it fails. The checks run concurrently so a dead service costs one
timeout, not the sum of them.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import psycopg
import redis

from gridmon.config import Settings, parts_for_log
from gridmon.heartbeat import beat_key, bridge_key
from gridmon.redis_client import redis_client
from gridmon.storage.db import ping_database

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
CELERY_PING_S = 1.0
# A heartbeat older than this many intervals means the component has stopped.
STALE_INTERVALS = 3.0
MIN_STALE_S = 15.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    age_s: float | None = None


def check_database(settings: Settings) -> CheckResult:
    try:
        ping_database(settings.database_url, TIMEOUT_S)
        return CheckResult(True, f"reachable at {parts_for_log(settings.database_url)}")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CheckResult(False, f"PostgreSQL unreachable: {first} (GRIDMON_DATABASE_URL)")


def _redis(settings: Settings) -> redis.Redis:
    return redis_client(settings.redis_url, timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S)


def check_redis(settings: Settings) -> CheckResult:
    try:
        with _redis(settings) as client:
            client.ping()
        return CheckResult(True, "PING answered")
    except redis.RedisError as exc:
        return CheckResult(False, f"Redis unreachable: {exc} (GRIDMON_REDIS_URL)")


def _mqtt_connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """An MQTT 3.1.1 CONNECT packet (clean session, keepalive 10 s)."""

    def field(text: str) -> bytes:
        data = text.encode()
        return struct.pack("!H", len(data)) + data

    flags = 0x02
    payload = field(client_id)
    if username is not None:
        flags |= 0x80
        payload += field(username)
        if password is not None:
            flags |= 0x40
            payload += field(password)
    variable = field("MQTT") + bytes([4, flags]) + struct.pack("!H", 10)
    body = variable + payload
    length = len(body)
    encoded = bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x10]) + bytes(encoded) + body


_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password (GRIDMON_MQTT_USERNAME/PASSWORD)",
    5: "not authorised (GRIDMON_MQTT_USERNAME/PASSWORD)",
}


def check_mqtt(settings: Settings) -> CheckResult:
    """Open a TCP connection, send CONNECT, expect CONNACK 0, then DISCONNECT."""
    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    client_id = f"gridmon-ready-{secrets.token_hex(4)}"
    try:
        with socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=TIMEOUT_S) as sock:
            sock.sendall(_mqtt_connect_packet(client_id, settings.mqtt_username, settings.mqtt_password))
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    break
                reply += chunk
            if len(reply) < 4 or reply[0] != 0x20:
                return CheckResult(False, f"MQTT broker at {where} sent no CONNACK (GRIDMON_MQTT_HOST/PORT)")
            code = reply[3]
            if code != 0:
                return CheckResult(False, f"MQTT broker at {where} refused: {_CONNACK_CODES.get(code, code)}")
            sock.sendall(b"\xe0\x00")
        return CheckResult(True, f"MQTT connect accepted at {where}")
    except OSError as exc:
        return CheckResult(False, f"MQTT broker unreachable at {where}: {exc} (GRIDMON_MQTT_HOST/PORT)")


def _stale_after(settings: Settings) -> float:
    return max(MIN_STALE_S, STALE_INTERVALS * settings.heartbeat_interval_s)


def check_bridge(settings: Settings) -> CheckResult:
    """At least one bridge heartbeat is fresh."""
    limit = _stale_after(settings)
    try:
        with _redis(settings) as client:
            keys = list(client.scan_iter(match=bridge_key("*"), count=100))
            values = client.mget(keys) if keys else []
    except redis.RedisError as exc:
        return CheckResult(False, f"bridge heartbeat unreadable: Redis error {exc}")
    now = time.time()
    ages = sorted(now - float(v) for v in values if v is not None)
    if not ages:
        return CheckResult(False, "no bridge heartbeat: is the bridge running? (gridmon bridge)")
    if ages[0] > limit:
        return CheckResult(False, f"bridge heartbeat {ages[0]:.0f} s old (limit {limit:.0f} s)", round(ages[0], 3))
    return CheckResult(True, f"{len(ages)} bridge(s), newest heartbeat {ages[0]:.1f} s old", round(ages[0], 3))


def check_beat(settings: Settings) -> CheckResult:
    limit = _stale_after(settings)
    try:
        with _redis(settings) as client:
            value = client.get(beat_key())
    except redis.RedisError as exc:
        return CheckResult(False, f"beat heartbeat unreadable: Redis error {exc}")
    if value is None:
        return CheckResult(False, "no beat heartbeat: are celery beat and a worker running?")
    age = time.time() - float(value)
    if age > limit:
        return CheckResult(False, f"beat heartbeat {age:.0f} s old (limit {limit:.0f} s)", round(age, 3))
    return CheckResult(True, f"beat heartbeat {age:.1f} s old", round(age, 3))


def check_workers(_: Settings) -> CheckResult:
    """Some Celery worker answers a broadcast ping within CELERY_PING_S."""
    from gridmon.celery import app

    try:
        with app.connection_for_write() as conn:
            # One attempt: a dead broker must fail this check now, not after kombu's retries.
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT_S)
            replies = app.control.ping(timeout=CELERY_PING_S, connection=conn)
    except Exception as exc:  # kombu/redis/amqp each raise their own kind
        return CheckResult(False, f"celery broker unreachable: {exc} (GRIDMON_BROKER_URL)")
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return CheckResult(False, f"no celery worker answered a ping within {CELERY_PING_S:.0f} s")
    return CheckResult(True, f"{len(names)} worker(s): {', '.join(names[:5])}")


CHECKS: dict[str, Callable[[Settings], CheckResult]] = {
    "database": check_database,
    "redis": check_redis,
    "mqtt": check_mqtt,
    "bridge": check_bridge,
    "workers": check_workers,
    "beat": check_beat,
}


def run_checks(settings: Settings) -> dict[str, CheckResult]:
    """Run every check concurrently; a check that overruns is reported as timed out."""
    deadline = TIMEOUT_S * 2 + CELERY_PING_S
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="gridmon-ready")
    futures = {name: pool.submit(check, settings) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=deadline)
    pool.shutdown(wait=False, cancel_futures=True)
    results: dict[str, CheckResult] = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = CheckResult(False, f"check timed out after {deadline:.0f} s")
            continue
        try:
            results[name] = future.result()
        except Exception as exc:  # a check must never take /ready down with it
            log.exception("readiness check crashed check=%s", name)
            results[name] = CheckResult(False, f"check failed: {type(exc).__name__}: {exc}")
    return results
