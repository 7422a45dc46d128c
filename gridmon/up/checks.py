"""Before starting: are the configured services there? One line per missing service, naming the
setting to fix."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import redis

from gridmon.config import Settings, parts_for_log
from gridmon.redis_client import redis_client, redis_where


@dataclass(frozen=True)
class ServiceCheck:
    name: str
    ok: bool
    where: str
    setting: str
    error: str = ""

    def line(self) -> str:
        if self.ok:
            return f"{self.name:<10} ok    {self.where}"
        return f"{self.name:<10} DOWN  {self.where} — {self.error} (set {self.setting})"


def _tcp(host: str, port: int, timeout: float = 2.0) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as exc:
        return str(exc)


def check_postgres(settings: Settings) -> ServiceCheck:
    where = parts_for_log(settings.database_url)
    admin = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin, connect_timeout=3):
            return ServiceCheck("postgres", True, where, "GRIDMON_DATABASE_URL")
    except psycopg.Error as exc:
        return ServiceCheck("postgres", False, where, "GRIDMON_DATABASE_URL", str(exc).strip().splitlines()[0])


def check_redis(settings: Settings) -> ServiceCheck:
    where = redis_where(settings.redis_url)
    try:
        with redis_client(settings.redis_url, connect_timeout_s=2.0) as client:
            client.ping()
        return ServiceCheck("redis", True, where, "GRIDMON_REDIS_URL")
    except redis.RedisError as exc:
        return ServiceCheck("redis", False, where, "GRIDMON_REDIS_URL", str(exc))


def check_mqtt(settings: Settings) -> ServiceCheck:
    where = f"{settings.mqtt_host}:{settings.mqtt_port}"
    error = _tcp(settings.mqtt_host, settings.mqtt_port)
    return ServiceCheck("mqtt", not error, where, "GRIDMON_MQTT_HOST / GRIDMON_MQTT_PORT", error)


def check_broker(settings: Settings) -> ServiceCheck:
    url = settings.broker_url or settings.redis_url
    parts = urlsplit(url)
    default_port = 5672 if parts.scheme.startswith("amqp") else 6379
    where = f"{parts.scheme}://{parts.hostname}:{parts.port or default_port}"
    error = _tcp(parts.hostname or "127.0.0.1", parts.port or default_port)
    return ServiceCheck("celery", not error, where, "GRIDMON_BROKER_URL", error)


def check_all(settings: Settings) -> list[ServiceCheck]:
    return [check_postgres(settings), check_redis(settings), check_mqtt(settings), check_broker(settings)]
