"""`gridmon api`: serve the HTTP API with uvicorn on GRIDMON_API_HOST:GRIDMON_API_PORT.

SIGTERM and Ctrl-C stop it gracefully with exit code 0. uvicorn re-raises the signal it caught
once it has shut down, which would make a clean stop look like a kill (−15) to a supervisor; the
handler it restores (and re-raises into) is ours, which exits with 0. The same handler ends the
process cleanly when the signal comes before uvicorn took the signals over.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

from gridmon.config import get_settings


@click.command()
@click.option("--host", default=None, help="Override GRIDMON_API_HOST.")
@click.option("--port", default=None, type=int, help="Override GRIDMON_API_PORT.")
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes.")
def api(host: str | None, port: int | None, workers: int) -> None:
    """Run the admin/operator API (OpenAPI at /docs)."""
    import uvicorn

    settings = get_settings()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _already_stopped)
    if settings.admin_token is None:
        click.echo("warning: GRIDMON_ADMIN_TOKEN is not set; admin routes will answer 503", err=True)
    uvicorn.run(
        "gridmon.api:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        # gridmon's own request log replaces uvicorn's access log (it never logs headers).
        access_log=False,
        log_config=None,
        proxy_headers=True,
    )


def _already_stopped(_signum: int, _frame: FrameType | None) -> None:
    """Runs when uvicorn re-raises the signal it stopped on (the server is down), or when a stop
    was asked for before uvicorn started: either way a requested stop, exit code 0."""
    sys.exit(0)


def register(group: click.Group) -> None:
    group.add_command(api)
