"""Core commands: migrate, bridge."""

from __future__ import annotations

import sys

import click

from gridmon.db import DatabaseUnavailable


@click.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Create the database if missing and apply migrations (alembic upgrade)."""
    from gridmon.db import migrate as run_migrate

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
def up(no_simulator: bool) -> None:
    """Run the whole system in the foreground (what `make run` calls); Ctrl-C stops it."""
    from gridmon.up.run import AlreadyRunning
    from gridmon.up.run import up as run_up

    try:
        sys.exit(run_up(simulate=not no_simulator))
    except AlreadyRunning as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)


def register(group: click.Group) -> None:
    group.add_command(migrate)
    group.add_command(bridge)
    group.add_command(up)
