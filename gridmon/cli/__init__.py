"""The `gridmon` command. Each area registers its sub-commands in its own module here."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import click
from pydantic import ValidationError

from gridmon.config import settings_error
from gridmon.logsetup import configure_logging


class FullHelpGroup(click.Group):
    """A group whose command list shows each command's whole first sentence, wrapped to the
    terminal, instead of cutting it at a fixed width with "…"."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _version() -> str:
    try:
        return version("gridmon")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


@click.group(cls=FullHelpGroup)
@click.version_option(_version(), "--version", prog_name="gridmon", message="%(prog)s %(version)s")
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
    except ValidationError as exc:  # a bad GRIDMON_* value: say which, not a traceback
        click.echo(settings_error(exc), err=True)
        sys.exit(2)
