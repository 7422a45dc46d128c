"""The `gridmon` command. Each area registers its sub-commands in its own module here."""

from __future__ import annotations

import sys

import click

from gridmon.logsetup import configure_logging


@click.group()
@click.option("--log-level", default=None, help="Override GRIDMON_LOG_LEVEL.")
def cli(log_level: str | None) -> None:
    """gridmon: power-grid telemetry monitor."""
    configure_logging(level=log_level)


def _register() -> None:
    from gridmon.cli import bench, core, database, devices, evaluate, scan, serve, simulate

    for module in (core, simulate, evaluate, bench, serve, scan, devices, database):
        module.register(cli)


def main() -> None:
    """Entry point of the `gridmon` script."""
    try:
        _register()
        cli()
    except KeyboardInterrupt:  # Ctrl-C before a command installed its own handling
        sys.exit(130)
