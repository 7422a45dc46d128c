"""`gridmon api`: serve the HTTP API with uvicorn on GRIDMON_API_HOST:GRIDMON_API_PORT."""

from __future__ import annotations

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


def register(group: click.Group) -> None:
    group.add_command(api)
