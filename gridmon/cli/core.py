"""Core commands: migrate, bridge."""

from __future__ import annotations

import sys

import click

from gridmon.db import DatabaseUnavailable


@click.command()
@click.option("--revision", default="heads", show_default=True)
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


def register(group: click.Group) -> None:
    group.add_command(migrate)
    group.add_command(bridge)
