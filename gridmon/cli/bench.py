"""`gridmon bench …`: benchmark commands; each prints one JSON line last."""

from __future__ import annotations

import json
import signal
from types import FrameType

import click

from gridmon.config import get_settings


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.group()
def bench() -> None:
    """Benchmarks of the real paths (not tests: they measure, they do not assert)."""


@bench.command("ingest")
@click.option("--readings", "-n", default=300_000, show_default=True, help="Readings per phase.")
@click.option("--rate", type=float, default=None, help="Live publish rate (readings/s); default as fast as possible.")
@click.option("--devices", default=1000, show_default=True)
@click.option("--workers", default=2, show_default=True, help="Celery worker processes (ingest queue).")
@click.option("--database", default="gridmon_bench", show_default=True, help="Database used (created, truncated).")
@click.option("--broker-url", default=None, help="Celery broker (default: a private redis-server).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result line.")
def ingest_cmd(
    readings: int, rate: float | None, devices: int, workers: int, database: str, broker_url: str | None, as_json: bool
) -> None:
    """Publisher → Mosquitto → bridge → Celery → PostgreSQL, live and drain phases."""
    from gridmon.bench.ingest import run_ingest_bench
    from gridmon.db import with_database

    # SIGTERM must unwind like Ctrl-C so the private stack's processes are stopped, not orphaned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    url = with_database(get_settings().database_url, database)
    result = run_ingest_bench(
        database_url=url, readings=readings, rate=rate, devices=devices, workers=workers, broker_url=broker_url
    )
    if not as_json:
        for key, value in result.items():
            click.echo(f"{key:>16}: {value}")
    click.echo(json.dumps(result))


def register(group: click.Group) -> None:
    from gridmon.detection.bench import detect

    bench.add_command(detect, "detect")
    group.add_command(bench)
