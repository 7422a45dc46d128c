"""`gridmon scan …`: run the scan by hand, show the shard watermarks, change the shard count."""

from __future__ import annotations

import json

import click

from gridmon.config import get_settings


@click.group()
def scan() -> None:
    """The sharded anomaly scan."""


@scan.command("run")
@click.option("--shard", type=int, default=None, help="One shard (default: every shard in turn).")
def run(shard: int | None) -> None:
    """Scan now (what beat does every GRIDMON_SCAN_INTERVAL_S); prints the report as JSON."""
    from gridmon.jobs.scan import run_scan

    click.echo(json.dumps(run_scan(shard=shard).to_dict()))


@scan.command("status")
def status() -> None:
    """Each shard's watermark and how many readings it scored."""
    from gridmon.jobs.scan import LEGACY_SCAN
    from gridmon.storage import db, scan_state

    with db.connection() as conn:
        rows = scan_state.list_watermarks(conn, LEGACY_SCAN + "/")
    click.echo(f"GRIDMON_SCAN_SHARDS={get_settings().scan_shards}")
    for name, watermark, readings in rows:
        click.echo(f"{name}\t{watermark.isoformat()}\t{readings}")


@scan.command("reshard")
@click.option("--shards", type=click.IntRange(1, 4096), required=True, help="The new number of shards.")
def reshard_command(shards: int) -> None:
    """Change the shard count safely: every old shard is scored up to one common bound, then the
    new shards start there (no reading scored twice or skipped). Then set GRIDMON_SCAN_SHARDS to
    the same number for every worker and beat and restart them."""
    from gridmon.jobs.scan import reshard

    report = reshard(shards)
    click.echo(json.dumps(report.to_dict()))
    click.echo(f"now set GRIDMON_SCAN_SHARDS={shards} for beat and every scan worker", err=True)


def register(group: click.Group) -> None:
    group.add_command(scan)
