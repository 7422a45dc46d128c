"""`gridmon devices credentials add|revoke DEVICE`: per-device MQTT logins in Mosquitto's password file.

Each device logs in to the broker as its own id; the deploy ACL (`deploy/mosquitto/acl`,
`pattern write grid/sensors/%u`) then lets it publish to `grid/sensors/<its id>` and nothing
else, and the bridge has its own read-only login. Why a password file and not Mosquitto's
dynamic-security plugin: the file is plain text that any Mosquitto 2 reads with two lines of
configuration, needs no plugin library or admin connection to the broker, is easy to back up and
review, and this command writes it without the `mosquitto_passwd` binary (so it runs wherever
gridmon runs). The cost is a reload: Mosquitto rereads the file and the ACL on SIGHUP
(`--reload-pid-file`, or `docker compose kill -s HUP mosquitto`).

Entries are Mosquitto 2's `$7$` format: PBKDF2-HMAC-SHA512 with a random 12-byte salt. The new
password is printed once, to standard output, and stored nowhere else.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import signal
import sys
from pathlib import Path

import click

from gridmon.config import get_settings
from gridmon.domain.readings import DEVICE_ID_RULE, valid_device_id

ITERATIONS = 1000


def password_entry(user: str, password: str, *, iterations: int = ITERATIONS) -> str:
    """One `user:$7$…` line of a Mosquitto 2 password file."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"{user}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _read(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _write(path: Path, lines: list[str]) -> None:
    """Replace the file in one rename, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{line}\n" for line in lines))
    if path.exists():  # keep the owner (the broker's user) when root edits the file
        st = path.stat()
        with contextlib.suppress(PermissionError):
            os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)


def set_password(path: Path, user: str, password: str) -> None:
    """Add `user` to the password file, or replace its entry."""
    lines = [line for line in _read(path) if line.split(":", 1)[0] != user]
    _write(path, [*lines, password_entry(user, password)])


def remove_user(path: Path, user: str) -> bool:
    """Remove `user`'s entry; False if it had none."""
    lines = _read(path)
    kept = [line for line in lines if line.split(":", 1)[0] != user]
    if len(kept) == len(lines):
        return False
    _write(path, kept)
    return True


def _password_file(option: Path | None) -> Path:
    path = option or get_settings().mqtt_password_file
    if path is None:
        raise click.UsageError("no password file: pass --password-file or set GRIDMON_MQTT_PASSWORD_FILE")
    return path


def _reload(pid_file: Path | None) -> None:
    if pid_file is None:
        click.echo("reload the broker to apply: SIGHUP to mosquitto (e.g. `docker compose kill -s HUP mosquitto`)")
        return
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGHUP)
    click.echo(f"mosquitto (pid {pid}) told to reload")


def _device(device: str) -> str:
    if not valid_device_id(device):
        raise click.BadParameter(f"{device!r} is not a device id ({DEVICE_ID_RULE})")
    return device


_FILE = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Mosquitto password file (default GRIDMON_MQTT_PASSWORD_FILE).",
)
_RELOAD = click.option(
    "--reload-pid-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Send SIGHUP to the mosquitto whose pid this file holds, so it rereads the file.",
)


@click.group()
def devices() -> None:
    """Manage devices."""


@devices.group()
def credentials() -> None:
    """Per-device MQTT logins (Mosquitto password file)."""


@credentials.command("add")
@click.argument("device")
@_FILE
@_RELOAD
def add(device: str, password_file: Path | None, reload_pid_file: Path | None) -> None:
    """Create (or replace) DEVICE's MQTT login; prints its new password once."""
    path = _password_file(password_file)
    password = secrets.token_urlsafe(24)
    set_password(path, _device(device), password)
    click.echo(f"device:   {device}\nusername: {device}\npassword: {password}")
    click.echo(f"(shown once; it may publish only to grid/sensors/{device})", err=True)
    _reload(reload_pid_file)


@credentials.command("revoke")
@click.argument("device")
@_FILE
@_RELOAD
def revoke(device: str, password_file: Path | None, reload_pid_file: Path | None) -> None:
    """Remove DEVICE's MQTT login (after the reload it can no longer connect)."""
    path = _password_file(password_file)
    if not remove_user(path, _device(device)):
        click.echo(f"error: {device!r} has no login in {path}", err=True)
        sys.exit(1)
    click.echo(f"revoked {device}")
    _reload(reload_pid_file)


def register(group: click.Group) -> None:
    group.add_command(devices)
