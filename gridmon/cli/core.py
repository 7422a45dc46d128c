"""Core commands: migrate, bridge."""

from __future__ import annotations

import sys

import click

from gridmon.storage.db import DatabaseUnavailable


@click.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Create the database if missing and apply migrations (alembic upgrade)."""
    from gridmon.storage.db import migrate as run_migrate

    try:
        run_migrate(revision=revision)
    except DatabaseUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"database migrated to {revision}")


@click.command()
@click.option("--client-id", default=None, help="MQTT client id (default GRIDMON_MQTT_CLIENT_ID); one per bridge.")
def bridge(client_id: str | None) -> None:
    """Run the MQTT → Celery bridge (same as `python mqtt_bridge.py`)."""
    from gridmon.bridge.service import run

    sys.exit(run(client_id))


@click.command()
@click.option("--no-simulator", is_flag=True, help="Do not start the simulator.")
@click.option(
    "--embedded",
    "mode",
    flag_value="embedded",
    help="Run embedded PostgreSQL, Redis and MQTT under the data directory, even if services exist.",
)
@click.option(
    "--external",
    "mode",
    flag_value="external",
    help="Use only the configured services; never start embedded ones (names what is missing).",
)
@click.option("--flower-port", default=5555, show_default=True, type=int, help="Port Flower listens on.")
def up(no_simulator: bool, mode: str | None, flower_port: int) -> None:
    """Run the whole system in the foreground (what `make run` calls); Ctrl-C stops it.

    Without --embedded/--external: the configured services, or embedded ones when nothing is
    configured and no default service answers (a fresh machine)."""
    from gridmon.services.embedded_proc import EmbeddedError
    from gridmon.up.mode import Mode
    from gridmon.up.run import AlreadyRunning
    from gridmon.up.run import up as run_up

    try:
        sys.exit(run_up(simulate=not no_simulator, mode=Mode(mode or "auto"), flower_port=flower_port))
    except AlreadyRunning as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    except EmbeddedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; everything that had started was stopped", err=True)
        sys.exit(130)


def register(group: click.Group) -> None:
    group.add_command(migrate)
    group.add_command(bridge)
    group.add_command(up)
