"""`gridmon bench query`: how fast the dashboard's history questions are answered, and how big a
million readings is on disk.

On a private database (dropped and created on the given server, migrated; TimescaleDB when the
server can create the extension), synthetic history for N devices × D days at one reading per
`interval_s` is loaded with COPY, the rollups are materialized, and the dashboard's requests are
timed through the real API (in-process HTTP client, same routes, same SQL):
one device's 24 h at 5-minute buckets, its 7 days at 1-hour buckets, the device page's 24 h
statistics, and the fleet list `/devices`. Each is repeated over random devices; medians are
reported. For comparison the same two device charts are timed straight from the raw rows (the
path before the rollups). Sizes are table + index bytes per million readings; on TimescaleDB every
chunk is then compressed, the sizes measured again and the queries timed again.

The database's own compression policy is left off during the run so that compression happens
exactly once, when the benchmark asks for it.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from gridmon.config import get_settings, with_database
from gridmon.storage import bench_history, rollups
from gridmon.storage.db import dispose_engine, migrate

log = logging.getLogger(__name__)

MILLION = 1_000_000

Get = Callable[[str, dict[str, str]], None]
"""One API request: GET path with query parameters; raises unless it succeeded."""
ApiOpener = Callable[[], AbstractContextManager[Get]]
"""Opens the API (the command line builds it: the benchmark does not import the API layer)."""


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Process settings for the run (the API and the migrations read them), restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    dispose_engine()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        dispose_engine()


def _recreate(url: str) -> None:
    bench_history.drop_database(url)
    log.info("bench database dropped database=%s", url.rpartition("/")[2])


def device_ids(devices: int) -> list[str]:
    return [f"bench-{k:05d}" for k in range(devices)]


def _device_block(device: str, start: datetime, count: int, interval_s: float, rng: np.random.Generator) -> str:
    """COPY text of one device's history: a daily cycle plus noise on each metric."""
    seconds = np.arange(count) * interval_s
    day = np.sin(2 * np.pi * seconds / 86400.0)
    voltage = 230.0 + 3.0 * day + rng.normal(0, 1.0, count)
    current = 10.0 + 4.0 * day + rng.normal(0, 0.5, count)
    temperature = 45.0 + 8.0 * day + rng.normal(0, 0.3, count)
    stamps = np.datetime_as_string(
        np.datetime64(start.replace(tzinfo=None), "ms") + (seconds * 1000).astype("timedelta64[ms]"), unit="ms"
    )
    return "".join(
        f"{device}\t{t}Z\t{v:.3f}\t{c:.3f}\t{k:.2f}\n"
        for t, v, c, k in zip(stamps.tolist(), voltage.tolist(), current.tolist(), temperature.tolist(), strict=True)
    )


def load_history(url: str, devices: int, days: float, interval_s: float, end: datetime, seed: int = 0) -> int:
    """COPY the synthetic history ending at `end` into `sensor_readings` and register the devices."""
    count = int(days * 86400 / interval_s)
    start = end - timedelta(seconds=count * interval_s)
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn:
        blocks = (_device_block(device, start, count, interval_s, rng) for device in device_ids(devices))
        bench_history.copy_history(conn, blocks)
        last = start + timedelta(seconds=(count - 1) * interval_s)
        bench_history.register_devices(conn, device_ids(devices), start, last)
    return count * devices


def _sizes(conn: psycopg.Connection, timescale: bool, readings: int) -> dict[str, Any]:
    """Bytes of the readings table and its indexes, per million readings; and the rollups' bytes."""
    table, index, rollup = bench_history.sizes(conn, timescale=timescale)
    per = MILLION / readings
    return {
        "table_mb_per_million": round(table * per / 2**20, 1),
        "index_mb_per_million": round(index * per / 2**20, 1),
        "total_mb_per_million": round((table + index) * per / 2**20, 1),
        "total_mb": round((table + index) / 2**20, 1),
        "rollups_mb": round(rollup / 2**20, 1),
    }


def _median_ms(run: Callable[[], None], repeats: int) -> dict[str, float]:
    run()  # warm: the first request plans statements and loads the app's caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def _api_queries(
    api: ApiOpener, url: str, devices: list[str], end: datetime, repeats: int, rng: random.Random
) -> dict[str, Any]:
    """The dashboard's requests through the API, medians over random devices."""
    with environment(GRIDMON_DATABASE_URL=url), api() as get:

        def chart(span: timedelta, bucket: str) -> Callable[[], None]:
            def run() -> None:
                params = {"start": (end - span).isoformat(), "end": end.isoformat(), "bucket": bucket}
                get(f"/devices/{rng.choice(devices)}/readings", params)

            return run

        def page(path: Callable[[], str], params: dict[str, str]) -> Callable[[], None]:
            return lambda: get(path(), params)

        return {
            "device_24h_5m": _median_ms(chart(timedelta(hours=24), "5m"), repeats),
            "device_7d_1h": _median_ms(chart(timedelta(days=7), "1h"), repeats),
            "device_page_24h_stats": _median_ms(
                page(lambda: f"/devices/{rng.choice(devices)}", {"window": "24h"}), repeats
            ),
            "fleet_devices": _median_ms(page(lambda: "/devices", {"limit": "100"}), repeats),
        }


def _raw_queries(url: str, devices: list[str], end: datetime, repeats: int, rng: random.Random) -> dict[str, Any]:
    """The two device charts aggregated from the raw rows (the path the rollups replace)."""
    with psycopg.connect(url, autocommit=True) as conn:

        def chart(span: timedelta, width: timedelta) -> Callable[[], None]:
            def run() -> None:
                bench_history.raw_chart(conn, rng.choice(devices), end - span, end, width)

            return run

        return {
            "device_24h_5m": _median_ms(chart(timedelta(hours=24), timedelta(minutes=5)), repeats),
            "device_7d_1h": _median_ms(chart(timedelta(days=7), timedelta(hours=1)), repeats),
        }


def _compress(conn: psycopg.Connection) -> float:
    started = time.perf_counter()
    bench_history.compress_all(conn)
    return time.perf_counter() - started


def _prepare(url: str, devices: int, days: float, interval_s: float, seed: int) -> tuple[datetime, dict[str, Any]]:
    """A new database with the history loaded and the rollups materialized: (end of the history,
    the load figures)."""
    _recreate(url)
    with environment(GRIDMON_TIMESCALE_COMPRESS_AFTER="", GRIDMON_TIMESCALE_RETENTION=""):
        migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        if rollups.is_timescale(conn):  # background refreshes would compete with the timed queries
            bench_history.pause_refresh_policies(conn)
    end = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    readings = load_history(url, devices, days, interval_s, end, seed)
    load_s = time.perf_counter() - started
    log.info("loaded readings=%d in %.1f s", readings, load_s)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        rollups.materialize(conn)
        materialize_s = time.perf_counter() - started
        log.info("rollups materialized in %.1f s", materialize_s)
        bench_history.vacuum_analyze(conn)
    figures = {
        "load_s": round(load_s, 1),
        "copy_readings_per_s": round(readings / load_s),
        "materialize_s": round(materialize_s, 1),
    }
    return end, figures


def _existing(url: str, devices: int, days: float, interval_s: float) -> datetime:
    """The end of the history an earlier run of the same size left in the database (`--reuse`)."""
    with psycopg.connect(url, autocommit=True) as conn:
        count, last = bench_history.history_extent(conn)
    if count != devices or last is None:
        raise RuntimeError(f"--reuse: the database holds no history of {devices} devices from an earlier run")
    return last + timedelta(seconds=interval_s)


def run_query_bench(
    api: ApiOpener,
    server_url: str,
    database: str,
    devices: int,
    days: float,
    interval_s: float,
    repeats: int,
    seed: int = 0,
    reuse: bool = False,
) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-ready report. `reuse` times the queries on the history
    an earlier run of the same size left (no load figures then)."""
    url = with_database(server_url, database)
    readings = int(days * 86400 / interval_s) * devices
    if reuse:
        end, load = _existing(url, devices, days, interval_s), {"reused": True}
    else:
        end, load = _prepare(url, devices, days, interval_s, seed)
    with psycopg.connect(url, autocommit=True) as conn:
        timescale = rollups.is_timescale(conn)
        sizes = _sizes(conn, timescale, readings)
    ids = device_ids(devices)
    rng = random.Random(seed)
    report: dict[str, Any] = {
        "benchmark": "query",
        "database": "timescaledb" if timescale else "postgresql",
        "devices": devices,
        "days": days,
        "interval_s": interval_s,
        "readings": readings,
        "repeats": repeats,
        **load,
        "queries": _api_queries(api, url, ids, end, repeats, rng),
        "raw_path": _raw_queries(url, ids, end, repeats, rng),
        "size": sizes,
    }
    if timescale:
        with psycopg.connect(url, autocommit=True) as conn:
            report["compress_s"] = round(_compress(conn), 1)
            report["size_compressed"] = _sizes(conn, timescale, readings)
        report["queries_compressed"] = _api_queries(api, url, ids, end, repeats, rng)
        report["raw_path_compressed"] = _raw_queries(url, ids, end, repeats, rng)
    return report
