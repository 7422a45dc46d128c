"""The `gridmon` command itself: --version, a help page that does not cut descriptions, the API
child's exit code on a clean stop, the bridge's default client id, a quiet editable install."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gridmon.config import REPO_ROOT, Settings
from gridmon.services import procs
from gridmon.services.mosquitto import free_port


def gridmon(*args: str, columns: int = 80, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridmon.cli.main", *args],
        env=procs.child_env({"COLUMNS": str(columns), **(env or {})}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    done = gridmon("--version")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"gridmon \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout


@pytest.mark.parametrize("group", [(), ("eval",), ("bench",)])
def test_help_lists_every_command_with_its_whole_first_sentence(group: tuple[str, ...]) -> None:
    done = gridmon(*group, "--help", columns=80)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("Commands:", 1)[1]
    assert "..." not in commands and "…" not in commands, commands
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    if not group:
        text = " ".join(commands.split())
        assert "Simulated grid sensors publishing readings to grid/sensors/<device_id> at QoS 1." in text
        assert "Benchmarks of the real paths (not tests: they measure, they do not assert)." in text


def test_api_stops_with_exit_code_0_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = procs.child_env({"GRIDMON_API_PORT": str(port), "GRIDMON_DATA_DIR": str(tmp_path)})
    log = tmp_path / "api.log"
    proc = procs.spawn([sys.executable, "-m", "gridmon.cli.main", "api"], env, log)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return proc.poll() is not None

    try:
        assert procs.wait_until(answers, timeout=60, interval=0.2) and proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
    finally:
        procs.stop(proc)


def test_default_bridge_client_id_is_stable_per_data_directory(tmp_path: Path) -> None:
    one = Settings.model_validate({"data_dir": tmp_path / "a"})
    again = Settings.model_validate({"data_dir": tmp_path / "a"})
    other = Settings.model_validate({"data_dir": tmp_path / "b"})
    assert one.mqtt_client_id == again.mqtt_client_id
    assert one.mqtt_client_id != other.mqtt_client_id
    assert re.fullmatch(r"gridmon-bridge-[0-9a-f]{8}", one.mqtt_client_id)
    assert Settings.model_validate({"data_dir": tmp_path, "mqtt_client_id": "bridge-7"}).mqtt_client_id == "bridge-7"


def test_relative_data_directories_differ_by_checkout(tmp_path: Path) -> None:
    ids = []
    for checkout in ("one", "two"):
        (tmp_path / checkout).mkdir()
        code = "from gridmon.config import Settings; print(Settings().mqtt_client_id)"
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path / checkout,
            env={k: v for k, v in os.environ.items() if k not in ("GRIDMON_DATA_DIR", "GRIDMON_MQTT_CLIENT_ID")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.strip())
    assert ids[0] != ids[1] and all(i.startswith("gridmon-bridge-") for i in ids)


@pytest.mark.slow
def test_editable_install_prints_no_warning_box(tmp_path: Path) -> None:
    """The Makefile's editable install, into a scratch virtualenv: nothing but silence."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    done = subprocess.run(
        ["make", "-s", "editable", f"PY={venv / 'bin' / 'python'}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Please be careful" not in done.stdout + done.stderr
    assert done.stdout + done.stderr == ""
    assert (venv / "bin" / "gridmon").exists()
