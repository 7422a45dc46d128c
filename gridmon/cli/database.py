"""`gridmon db app-role ROLE`: create the least-privilege role the processes connect as.

Run it as the schema owner (GRIDMON_DATABASE_OWNER_URL, else GRIDMON_DATABASE_URL) after
`gridmon migrate`; then point GRIDMON_DATABASE_URL at the role (docs/security.md). With `trust`
authentication (a local development server) the role needs no password.
"""

from __future__ import annotations

import os
import sys

import click
import psycopg

from gridmon.config import get_settings, parts_for_log


@click.group("db")
def db() -> None:
    """Database administration (run as the schema owner)."""


@db.command("app-role")
@click.argument("role")
@click.option(
    "--password-env",
    default=None,
    metavar="VAR",
    help="Set the role's password from this environment variable (never from the command line).",
)
def app_role(role: str, password_env: str | None) -> None:
    """Create ROLE (if missing) with row access only, for the bridge, workers and API."""
    from gridmon.storage.roles import grant_app_role

    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            click.echo(f"error: environment variable {password_env} is empty or unset", err=True)
            sys.exit(2)
    url = get_settings().owner_url
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            created = grant_app_role(conn, role, password)
    except psycopg.Error as exc:
        click.echo(f"error: {parts_for_log(url)}: {str(exc).strip().splitlines()[0]}", err=True)
        sys.exit(2)
    click.echo(f"role {role} {'created' if created else 'updated'}: row access on {parts_for_log(url)}")


def register(group: click.Group) -> None:
    group.add_command(db)
