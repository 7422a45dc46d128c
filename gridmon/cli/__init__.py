"""The `gridmon` command. Each area registers its sub-commands in its own module here."""

from __future__ import annotations

import click

from gridmon.logsetup import configure_logging


@click.group()
@click.option("--log-level", default=None, help="Override GRIDMON_LOG_LEVEL.")
def cli(log_level: str | None) -> None:
    """gridmon: power-grid telemetry monitor."""
    configure_logging(level=log_level)


def _register() -> None:
    from gridmon.cli import core

    core.register(cli)
    for name in ("simulate", "evaluate", "bench", "serve"):
        try:
            module = __import__(f"gridmon.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"gridmon.cli.{name}":
                raise
            continue
        module.register(cli)


def main() -> None:
    """Entry point of the `gridmon` script."""
    _register()
    cli()
