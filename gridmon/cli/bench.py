"""`gridmon bench …`: benchmark commands; each prints one JSON line last."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click

from gridmon.cli import FullHelpGroup
from gridmon.config import get_settings, with_database

F = TypeVar("F", bound=Callable[..., Any])


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _json_option() -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")


def _devices_option(default: int) -> Callable[[F], F]:
    return click.option("--devices", default=default, show_default=True, type=click.IntRange(min=1))


def _database_option(default: str, what: str = "created, truncated") -> Callable[[F], F]:
    return click.option("--database", default=default, show_default=True, help=f"Database used ({what}).")


def _workers_option(queue: str) -> Callable[[F], F]:
    return click.option(
        f"--{queue}-workers",
        default=2,
        show_default=True,
        type=click.IntRange(min=1),
        help=f"Worker processes on the {queue} queue.",
    )


def _positive_option(*names: str, default: float, help: str) -> Callable[[F], F]:
    """A number above 0 (a time, a rate, a length)."""
    return click.option(
        *names, default=default, show_default=True, type=click.FloatRange(min=0, min_open=True), help=help
    )


@click.group(cls=FullHelpGroup)
def bench() -> None:
    """Benchmarks of the real paths (not tests: they measure, they do not assert)."""


@bench.command("ingest")
@click.option("--readings", "-n", default=300_000, show_default=True, help="Readings per phase.")
@click.option("--rate", type=float, default=None, help="Live publish rate (readings/s); default as fast as possible.")
@_devices_option(1000)
@click.option("--workers", default=2, show_default=True, help="Celery worker processes (ingest queue).")
@_database_option("gridmon_bench")
@click.option(
    "--database-url",
    default=None,
    help="Whole URL of the database used (created, truncated), e.g. on a TimescaleDB server; overrides --database.",
)
@click.option("--broker-url", default=None, help="Celery broker (default: a private redis-server).")
@click.option("--sparkplug", is_flag=True, help="Publish the readings as Sparkplug B messages instead of JSON.")
@click.option("--seq", is_flag=True, help="JSON payloads carry a per-device `seq` (ingest counts gaps).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result line.")
def ingest_cmd(
    readings: int,
    rate: float | None,
    devices: int,
    workers: int,
    database: str,
    database_url: str | None,
    broker_url: str | None,
    sparkplug: bool,
    seq: bool,
    as_json: bool,
) -> None:
    """Publisher → Mosquitto → bridge → Celery → PostgreSQL, live and drain phases."""
    from gridmon.bench.ingest import run_ingest_bench

    # SIGTERM must unwind like Ctrl-C so the private stack's processes are stopped, not orphaned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    url = database_url or with_database(get_settings().database_url, database)
    result = run_ingest_bench(
        database_url=url,
        readings=readings,
        rate=rate,
        devices=devices,
        workers=workers,
        broker_url=broker_url,
        sparkplug=sparkplug,
        seq=seq,
    )
    if not as_json:
        for key, value in result.items():
            click.echo(f"{key:>16}: {value}")
    click.echo(json.dumps(result))


@bench.command("detect")
@_json_option()
@_devices_option(100)
@_positive_option("--hours", default=2.0, help="Hours of readings per device.")
@_positive_option("--interval", "interval_s", default=2.0, help="Seconds between a device's readings.")
@_positive_option("--scan-seconds", default=60.0, help="Length of one scan step.")
@click.option("--repeats", default=3, show_default=True, help="Timed runs (median).")
@click.option("--seed", default=0, show_default=True)
def detect_cmd(
    as_json: bool, devices: int, hours: float, interval_s: float, scan_seconds: float, repeats: int, seed: int
) -> None:
    """Scoring throughput of the streaming detector and forest training time (one process)."""
    from gridmon.bench.detect import run_bench

    report = run_bench(
        devices=devices, hours=hours, interval_s=interval_s, scan_seconds=scan_seconds, seed=seed, repeats=repeats
    )
    if not as_json:
        click.echo(f"scoring (one call per device): {report['score_readings_per_s']:,.0f} readings/s")
        click.echo(f"scoring in scan steps (state stored between): {report['scan_readings_per_s']:,.0f} readings/s")
        click.echo(f"scan steps give the one-pass flags: {report['scan_equals_one_pass']}")
        click.echo(f"safety check alone: {report['safety_readings_per_s']:,.0f} readings/s")
        click.echo(f"forest training from a replay: {report['retrain_s']:.1f} s ({report['train_rows']:,} rows)")
    click.echo(json.dumps(report))


@bench.command("scan")
@_json_option()
@_devices_option(1000)
@_positive_option("--minutes", default=10.0, help="Minutes of one-per-second readings per device.")
@click.option("--workers", default=2, show_default=True, help="Processes in the parallel run.")
@click.option("--shards", default=16, show_default=True)
@_database_option("gridmon_bench_scan")
def scan_cmd(as_json: bool, devices: int, minutes: float, workers: int, shards: int, database: str) -> None:
    """Scan throughput with the database work, one process vs `--workers` processes on a backlog."""
    from gridmon.bench.scan import run_scan_bench

    url = with_database(get_settings().database_url, database)
    report = run_scan_bench(database_url=url, devices=devices, minutes=minutes, workers=workers, shards=shards)
    if not as_json:
        one, many = report["one_process"], report["many_processes"]
        click.echo(f"1 process: {one['readings_per_s']:,.0f} readings/s (scored once: {one['scored_once']})")
        click.echo(
            f"{workers} processes: {many['readings_per_s']:,.0f} readings/s "
            f"(×{report['speedup']:.2f}, scored once: {many['scored_once']})"
        )
    click.echo(json.dumps(report))


@contextmanager
def _api_opener() -> Iterator[Callable[[str, dict[str, str]], None]]:
    """The API in-process (same routes and SQL as served), for `bench query`: GET → raises on error."""
    from fastapi.testclient import TestClient

    from gridmon.api import create_app

    settings = get_settings()
    headers = {"Authorization": f"Bearer {settings.read_token}"} if settings.read_token else {}
    with TestClient(create_app(), raise_server_exceptions=True) as client:

        def get(path: str, params: dict[str, str]) -> None:
            client.get(path, params=params, headers=headers).raise_for_status()

        yield get


@bench.command("query")
@_json_option()
@_devices_option(100)
@_positive_option("--days", default=7.0, help="Days of history per device.")
@_positive_option("--interval", "interval_s", default=10.0, help="Seconds between a device's readings.")
@click.option(
    "--repeats", default=20, show_default=True, type=click.IntRange(min=1), help="Timed requests per query (median)."
)
@click.option(
    "--database-url",
    default=None,
    help="Server to run on (its database part is replaced by --database); default GRIDMON_DATABASE_URL's server.",
)
@_database_option("gridmon_bench_query", "dropped and created")
@click.option("--reuse", is_flag=True, help="Time the queries on the history an earlier run of the same size left.")
def query_cmd(
    as_json: bool,
    devices: int,
    days: float,
    interval_s: float,
    repeats: int,
    database_url: str | None,
    database: str,
    reuse: bool,
) -> None:
    """History queries the dashboard asks (rollups vs raw rows) and bytes per million readings."""
    from gridmon.bench.query import run_query_bench

    server = database_url or get_settings().database_url
    report = run_query_bench(_api_opener, server, database, devices, days, interval_s, repeats, reuse=reuse)
    if not as_json:
        click.echo(
            f"{report['database']}: {report['readings']:,} readings, loaded in {report.get('load_s', '(reused)')} s"
        )
        for name, figures in report["queries"].items():
            click.echo(f"{name:>22}: p50 {figures['p50_ms']} ms")
        click.echo(f"{'size':>22}: {report['size']['total_mb_per_million']} MB per million readings")
    click.echo(json.dumps(report))


@bench.command("fleet")
@_devices_option(1000)
@_positive_option(
    "--interval",
    "interval_s",
    default=1.0,
    help="Seconds between two readings of one device (load = devices / interval readings/s).",
)
@_positive_option("--minutes", default=1.0, help="How long the load runs.")
@_workers_option("scan")
@_positive_option(
    "--scan-interval", "scan_interval_s", default=5.0, help="Beat's scan interval (GRIDMON_SCAN_INTERVAL_S)."
)
@_positive_option(
    "--predict-interval", "predict_interval_s", default=60.0, help="Seconds between two maintenance cycles."
)
@click.option("--shards", default=16, show_default=True, type=click.IntRange(1, 4096), help="GRIDMON_SCAN_SHARDS.")
@_workers_option("ingest")
@_database_option("gridmon_bench_fleet")
@_json_option()
def fleet_cmd(
    devices: int,
    interval_s: float,
    minutes: float,
    scan_workers: int,
    scan_interval_s: float,
    predict_interval_s: float,
    shards: int,
    ingest_workers: int,
    database: str,
    as_json: bool,
) -> None:
    """The whole system under a fleet's load: publisher → bridge → ingest → scans → predictions
    → alerts, API up; throughput, loss, scan lag, maintenance cycle, API latency, CPU per kind."""
    from gridmon.bench.fleet import FleetParams, run_fleet_bench

    signal.signal(signal.SIGTERM, _raise_interrupt)
    params = FleetParams(
        devices=devices,
        interval_s=interval_s,
        minutes=minutes,
        scan_workers=scan_workers,
        scan_interval_s=scan_interval_s,
        predict_interval_s=predict_interval_s,
        shards=shards,
        ingest_workers=ingest_workers,
    )
    url = with_database(get_settings().database_url, database)
    report = run_fleet_bench(database_url=url, params=params)
    if not as_json:
        for key, value in report.items():
            click.echo(f"{key:>28}: {value}")
    click.echo(json.dumps(report))


def register(group: click.Group) -> None:
    group.add_command(bench)
