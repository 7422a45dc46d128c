"""Embedded mode: real PostgreSQL, Redis and an MQTT broker from Python packages, under `.gridmon/`.

For a first run on a machine without the services: `gridmon up` starts them here (see
`gridmon.up.mode` for when), hands their addresses to every child through GRIDMON_* variables
and stops them last. They bind 127.0.0.1 only, on ports that are stable between runs when free
(15432, 16379, 11883 — never the system services' 5432/6379/1883), each with a generated
password. `<data_dir>/embedded.json` (mode 0600) lists the URLs and pids while they run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from gridmon.services.embedded_mqtt import EmbeddedMqtt
from gridmon.services.embedded_postgres import EmbeddedPostgres
from gridmon.services.embedded_proc import EmbeddedError
from gridmon.services.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)

__all__ = ["EmbeddedError", "EmbeddedServices"]


class EmbeddedServices:
    """Start, describe, watch and stop the three embedded servers as one unit."""

    def __init__(self, data_dir: Path, *, ports: dict[str, int] | None = None):
        self.data_dir = data_dir.resolve()
        ports = ports or {}
        self.postgres = EmbeddedPostgres(self.data_dir, **_port(ports, "postgres"))
        self.redis = EmbeddedRedis(self.data_dir, **_port(ports, "redis"))
        self.mqtt = EmbeddedMqtt(self.data_dir, **_port(ports, "mqtt"))
        self._started: list[EmbeddedPostgres | EmbeddedRedis | EmbeddedMqtt] = []

    @property
    def state_file(self) -> Path:
        return self.data_dir / "embedded.json"

    def start(self) -> EmbeddedServices:
        """Start PostgreSQL, Redis, MQTT; on any failure stop what started and raise EmbeddedError."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for server in (self.postgres, self.redis, self.mqtt):
                # Listed before it starts: a start cut short (Ctrl-C) may have left it running.
                self._started.append(server)
                server.start()
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def stop(self) -> None:
        """Stop in reverse order (the broker first, the database last); each one even if another fails."""
        errors = []
        while self._started:
            server = self._started.pop()
            try:
                server.stop()
                log.info("embedded %s stopped", server.name)
            except (EmbeddedError, OSError) as exc:
                errors.append(f"{server.name}: {exc}")
        self.state_file.unlink(missing_ok=True)
        if errors:
            raise EmbeddedError("; ".join(errors))

    def env(self) -> dict[str, str]:
        """What every gridmon process needs to use the embedded servers instead of configured ones."""
        return {
            "GRIDMON_DATABASE_URL": self.postgres.url(),
            "GRIDMON_REDIS_URL": self.redis.url,
            "GRIDMON_BROKER_URL": self.redis.url,
            "GRIDMON_RESULT_BACKEND": self.redis.url,
            "GRIDMON_MQTT_HOST": "127.0.0.1",
            "GRIDMON_MQTT_PORT": str(self.mqtt.port),
            # amqtt speaks MQTT 3.1.1 only; the bridge then uses clean_session=False.
            "GRIDMON_MQTT_PROTOCOL": "4",
            "GRIDMON_MQTT_USERNAME": self.mqtt.USERNAME,
            "GRIDMON_MQTT_PASSWORD": self.mqtt.password,
            # amqtt has no shared subscriptions; embedded mode runs one bridge.
            "GRIDMON_MQTT_SHARED_GROUP": "",
        }

    def where(self) -> list[str]:
        """One line per server for the start message (no passwords)."""
        return [f"{s.name:<9} {s.where}" for s in (self.postgres, self.redis, self.mqtt)]

    def pids(self) -> dict[str, int | None]:
        return {s.name: s.pid for s in (self.postgres, self.redis, self.mqtt)}

    def ports(self) -> dict[str, int]:
        return {s.name: s.port for s in (self.postgres, self.redis, self.mqtt)}

    def dead(self) -> str | None:
        """The name of a started server that is no longer running, if any."""
        for server in self._started:
            if not server.alive():
                return server.name
        return None

    def _write_state(self) -> None:
        state = {"urls": self.env(), "pids": self.pids(), "ports": self.ports(), "pid": os.getpid()}
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)


def apply_env(overrides: dict[str, str]) -> None:
    """Point this process at the embedded servers: set the variables, drop the original design's
    names (they would not win over GRIDMON_* anyway, but would confuse whoever reads `env`)."""
    for legacy in ("DB_DSN", "REDIS_URL", "BROKER_HOST", "BROKER_PORT"):
        os.environ.pop(legacy, None)
    os.environ.update(overrides)


def _port(ports: dict[str, int], name: str) -> dict[str, int]:
    return {"port": ports[name]} if name in ports else {}
