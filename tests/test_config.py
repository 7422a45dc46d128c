"""Settings, the original design's variable names, and the shipped deployment files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gridmon.config import Settings
from gridmon.services.mosquitto import QUEUE_SETTINGS, render_config

ROOT = Path(__file__).resolve().parent.parent


def make(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in list(__import__("os").environ):
        if key.startswith("GRIDMON_") or key in ("DB_DSN", "REDIS_URL", "BROKER_HOST", "BROKER_PORT"):
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)


def test_defaults_work_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(monkeypatch)
    assert s.database_url == "postgresql://postgres@127.0.0.1:5432/gridmon"
    assert s.broker_url == s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_topic) == ("127.0.0.1", 1883, "grid/sensors/#")
    assert s.admin_token is None


def test_original_variable_names_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(monkeypatch, DB_DSN="postgres://u:p@db:5433/grid", BROKER_HOST="mq", BROKER_PORT="1999", REDIS_URL="redis://r:6380/2")
    assert s.database_url == "postgresql://u:p@db:5433/grid"
    assert (s.mqtt_host, s.mqtt_port) == ("mq", 1999)
    assert s.redis_url == s.broker_url == "redis://r:6380/2"


def test_gridmon_names_win_and_amqp_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(
        monkeypatch,
        GRIDMON_DATABASE_URL="postgresql+psycopg://a@h/x",
        GRIDMON_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
        GRIDMON_MQTT_SHARED_GROUP="bridges",
    )
    assert s.database_url == "postgresql://a@h/x"
    assert s.sqlalchemy_url == "postgresql+psycopg://a@h/x"
    assert s.broker_url == "amqp://guest:guest@127.0.0.1:5672//"
    assert s.subscription_topic == "$share/bridges/grid/sensors/#"


@pytest.mark.parametrize("token", ["changeme", "short", "secret"])
def test_placeholder_tokens_rejected(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    with pytest.raises(ValidationError):
        make(monkeypatch, GRIDMON_ADMIN_TOKEN=token)


def test_non_postgres_url_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="postgresql"):
        make(monkeypatch, GRIDMON_DATABASE_URL="mysql://x@y/z")


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make(monkeypatch)
    env_file = tmp_path / ".env"
    env_file.write_text("GRIDMON_MQTT_PORT=18883\nGRIDMON_ADMIN_TOKEN=abcdefghijklmnopqrstuvwxyz\n")
    s = Settings(_env_file=env_file)
    assert s.mqtt_port == 18883
    assert s.admin_token == "abcdefghijklmnopqrstuvwxyz"


def test_compose_mosquitto_conf_has_the_project_queue_settings() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    settings = dict(re.findall(r"^(\w+)\s+(\S+)\s*$", conf, flags=re.M))
    for key, value in QUEUE_SETTINGS.items():
        assert settings.get(key) == value, key
    assert "password_file" in settings and settings["allow_anonymous"] == "false"
    assert re.search(r"^listener 9001\s*\nprotocol websockets", conf, flags=re.M)


def test_private_broker_config_is_lossless(tmp_path: Path) -> None:
    conf = render_config(18830, tmp_path)
    assert "max_queued_messages 0" in conf and f"persistence_location {tmp_path}/" in conf


def test_compose_file_wires_every_process() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("mosquitto", "timescaledb", "redis", "migrate", "bridge", "worker", "beat", "api", "flower", "simulator"):
        assert name in services, name
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb") and "pg15" in services["timescaledb"]["image"]
    assert "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in services["mosquitto"]["volumes"]
    for name in ("pgdata", "redis-data", "mosquitto-data"):
        assert name in compose["volumes"]
    assert services["migrate"]["command"][-1].startswith("gridmon migrate && ")
    assert services["bridge"]["command"] == ["python", "mqtt_bridge.py"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "gridmon", "worker"]
    env = services["bridge"]["environment"]
    assert env["GRIDMON_MQTT_HOST"] == "mosquitto" and "GRIDMON_MQTT_PASSWORD" in env
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in (
        services["alertmanager"]["volumes"]
    )
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert env["GRIDMON_ALERTMANAGER_URL"].endswith("alertmanager:9093}")


def test_a_bad_setting_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "GRIDMON_ALARMS_PER_DEVICE_DAY": "abc", "GRIDMON_EPISODE_GAP_S": "-3"}
    env["GRIDMON_DATABASE_URL"] = "mysql://admin:hunter2@db/gridmon"
    command = [sys.executable, "-m", "gridmon.cli.main", "eval", "noise", "--devices", "1", "--days", "1"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "error: invalid configuration (3 setting(s)" in done.stderr
    assert "GRIDMON_ALARMS_PER_DEVICE_DAY: Input should be a valid number" in done.stderr and "'abc'" in done.stderr
    assert "GRIDMON_EPISODE_GAP_S: Input should be greater than 0 (got '-3')" in done.stderr
    assert "GRIDMON_DATABASE_URL" in done.stderr and "hunter2" not in done.stderr  # a secret is never echoed
    assert done.stdout == ""  # nothing was evaluated


def test_the_bridge_says_which_setting_is_bad(tmp_path: Path) -> None:
    env = {**os.environ, "GRIDMON_MQTT_PORT": "abc"}
    command = [sys.executable, str(ROOT / "mqtt_bridge.py")]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "GRIDMON_MQTT_PORT: Input should be a valid integer" in done.stderr and "(got 'abc')" in done.stderr


def test_a_celery_worker_says_which_setting_is_bad(tmp_path: Path) -> None:
    env = {**os.environ, "GRIDMON_MQTT_PORT": "abc"}
    command = [str(Path(sys.executable).parent / "celery"), "-A", "gridmon", "worker", "--loglevel", "warning"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "GRIDMON_MQTT_PORT: Input should be a valid integer" in done.stderr and "(got 'abc')" in done.stderr


def test_alembic_says_which_setting_is_bad() -> None:
    env = {**os.environ, "GRIDMON_MQTT_PORT": "abc"}
    command = [str(Path(sys.executable).parent / "alembic"), "upgrade", "head"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "GRIDMON_MQTT_PORT: Input should be a valid integer" in done.stderr and "(got 'abc')" in done.stderr
