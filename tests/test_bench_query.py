"""`gridmon bench query` at a tiny size: it loads, materializes, asks, measures and prints JSON last.

Not a timing test: it checks that the command runs end to end on the test server and reports
the figures it promises (the figures themselves are docs/rollups.md's).
"""

from __future__ import annotations

import json
import os

import psycopg
from click.testing import CliRunner

from gridmon.cli.bench import bench
from tests.conftest import EXPECT_TIMESCALEDB

TEST_DB_URL = os.environ.get("GRIDMON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/gridmon_test")


def test_bench_query_prints_its_figures_as_the_last_line() -> None:
    database = TEST_DB_URL.rsplit("/", 1)[1] + "_bench_query"
    args = ["query", "--json", "--devices", "3", "--days", "0.5", "--interval", "60", "--repeats", "2"]
    result = CliRunner().invoke(bench, [*args, "--database-url", TEST_DB_URL, "--database", database])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["readings"] == 3 * 720
    assert set(report["queries"]) == {"device_24h_5m", "device_7d_1h", "device_page_24h_stats", "fleet_devices"}
    assert all(q["p50_ms"] > 0 for q in report["queries"].values())
    assert report["size"]["total_mb_per_million"] > 0
    # both halves of `make test` run this file: compression is measured on the TimescaleDB one
    assert report["database"] == ("timescaledb" if EXPECT_TIMESCALEDB else "postgresql")
    if EXPECT_TIMESCALEDB:
        assert report["size_compressed"]["total_mb_per_million"] < report["size"]["total_mb_per_million"]
    url = TEST_DB_URL.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT sum(n) FROM readings_1h").fetchone() == (3 * 720,)  # materialized
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (3,)


def test_bench_query_rejects_nonsense_sizes() -> None:
    for option, value in (("--devices", "0"), ("--days", "0"), ("--interval", "-1"), ("--repeats", "0")):
        result = CliRunner().invoke(bench, ["query", option, value])
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, result.output
