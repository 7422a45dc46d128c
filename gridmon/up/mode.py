"""Which services `gridmon up` runs against: the configured ones, or embedded servers.

- `--external`: the configured (or default) services; if one does not answer, refuse and name it
  and the setting to fix. Nothing embedded is ever started.
- `--embedded`: embedded servers under the data directory, whatever else exists or is configured.
- neither (what `make run` does): external when the user configured any service or every default
  service answers; embedded when none is configured and none of the defaults answers, which is a
  fresh machine. Anything in between (PostgreSQL running but no MQTT broker, say) is most likely
  a half-finished setup: refuse like `--external`, and mention `--embedded`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from gridmon.up.checks import ServiceCheck

# Settings that say "use this service" (env names as the README lists them, legacy ones included).
SERVICE_SETTINGS = (
    "GRIDMON_DATABASE_URL",
    "DB_DSN",
    "GRIDMON_REDIS_URL",
    "REDIS_URL",
    "GRIDMON_BROKER_URL",
    "GRIDMON_RESULT_BACKEND",
    "GRIDMON_MQTT_HOST",
    "BROKER_HOST",
    "GRIDMON_MQTT_PORT",
    "BROKER_PORT",
)


class Mode(StrEnum):
    AUTO = "auto"
    EXTERNAL = "external"
    EMBEDDED = "embedded"


@dataclass(frozen=True)
class Decision:
    embedded: bool
    reason: str
    failed: list[ServiceCheck] = field(default_factory=list)
    """External services that do not answer (external mode cannot start while this is non-empty)."""
    hint: str = ""


def configured_services(env: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> list[str]:
    """The service settings the user set, in the environment or in `.env` (non-empty values only)."""
    from dotenv import dotenv_values

    env = os.environ if env is None else env
    file_values = dotenv_values(env_file) if env_file is not None and env_file.exists() else {}
    return [name for name in SERVICE_SETTINGS if env.get(name) or file_values.get(name)]


def decide(mode: Mode, configured: list[str], run_checks: Callable[[], list[ServiceCheck]]) -> Decision:
    """Embedded or external, and why. `run_checks` is only called when the answer depends on it."""
    if mode is Mode.EMBEDDED:
        return Decision(True, "--embedded")
    checks = run_checks()
    failed = [check for check in checks if not check.ok]
    if mode is Mode.EXTERNAL:
        return Decision(False, "--external", failed)
    if configured:
        return Decision(False, f"configured: {', '.join(configured)}", failed)
    if not failed:
        return Decision(False, "the default services answer")
    if len(failed) == len(checks):
        return Decision(True, "no service is configured and none of the defaults answers")
    hint = "or run `gridmon up --embedded` (make run UP_ARGS=--embedded) to use embedded servers instead"
    return Decision(False, "some default services answer", failed, hint)
