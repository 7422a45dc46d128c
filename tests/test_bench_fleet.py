"""`gridmon bench fleet`: the lag arithmetic on known numbers, bad input, and one small real run
of the whole system (50 devices, 30 s) whose JSON must be complete and sane."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from gridmon.bench.fleet import FleetParams
from gridmon.bench.fleet_probe import percentile, scan_lags
from gridmon.cli.bench import fleet_cmd

KINDS = {
    "publisher",
    "mosquitto",
    "bridge",
    "redis",
    "ingest_worker",
    "scan_worker",
    "maintenance_worker",
    "beat",
    "api",
    "database",
}


def test_scan_lag_is_first_watermark_past_the_reading() -> None:
    names = ["readings/0of2", "readings/1of2"]
    observations = [
        (10.0, {"readings/0of2": 5.0}),
        (12.0, {"readings/0of2": 11.0, "readings/1of2": 8.0}),
        (13.0, {"readings/0of2": 9.0, "readings/1of2": 8.0}),  # a stale read never moves back
    ]
    # (shard, slot, newest ingested_at in slot, readings)
    histogram = [(0, 4.0, 4.5, 3), (0, 7.0, 7.0, 2), (0, 11.0, 11.0, 4), (1, 7.0, 7.9, 5)]
    lags, counts, unscored = scan_lags(histogram, observations, names)
    # 4.5 < 5 at t=10; 7.0 first passed at t=12; 11.0 is never passed (half-open windows)
    np.testing.assert_allclose(lags, [5.5, 5.0, 4.1])
    np.testing.assert_array_equal(counts, [3, 2, 5])
    assert unscored == 4


def test_weighted_percentile_counts_readings_not_slots() -> None:
    values = np.array([1.0, 10.0])
    assert percentile(values, 50, np.array([99.0, 1.0])) == 1.0
    assert percentile(values, 99.5, np.array([99.0, 1.0])) == 10.0
    assert percentile([], 99) is None


@pytest.mark.parametrize(
    "field,value", [("devices", 0), ("scan_workers", 0), ("interval_s", 0.0), ("minutes", -1.0), ("shards", 0)]
)
def test_bad_parameters_are_refused(field: str, value: float) -> None:
    args = {"devices": 10, "interval_s": 1.0, "minutes": 1.0, "scan_workers": 1, field: value}
    with pytest.raises(ValueError, match=field):
        FleetParams(**args)  # type: ignore[arg-type]


def test_cli_refuses_zero_devices() -> None:
    result = CliRunner().invoke(fleet_cmd, ["--devices", "0", "--json"])
    assert result.exit_code == 2
    assert "--devices" in result.output


@pytest.mark.slow
def test_small_fleet_run_reports_sane_values(migrated_database: str) -> None:
    database = migrated_database.rsplit("/", 1)[1]
    args = ["--devices", "50", "--interval", "1", "--minutes", "0.5", "--scan-workers", "2"]
    args += ["--scan-interval", "2", "--predict-interval", "10", "--shards", "4", "--database", database, "--json"]
    result = CliRunner().invoke(fleet_cmd, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])

    assert report["published"] == 50 * 30 and report["publisher_dropped"] == 0
    assert report["stored"] == report["published"] and report["lost"] == 0 and report["duplicates"] == 0
    assert report["publish_rate"] > 0 and report["stored_rate"] > 0
    # every reading scored exactly once, and a lag measured for each of them
    assert report["all_scored"] is True and report["unscored"] == 0
    assert report["scanned"] == report["stored"] == report["lag_readings"]
    assert 0 < report["scan_lag_p50_s"] <= report["scan_lag_p99_s"] <= report["scan_lag_max_s"] < report["wall_s"]
    assert report["scan_readings_per_worker_s"] > 0 and report["scan_readings_per_cpu_s"] > 0
    # cycles every 10 s during a 30 s load: at least two, each predicting every device
    assert len(report["maintenance_cycles_s"]) >= 2 and report["maintenance_cycle_s"] > 0
    assert report["maintenance_devices"] == 50 and report["maintenance_expired_shards"] == 0
    assert report["api_requests"]["devices"] > 10 and report["api_requests"]["chart"] > 10
    assert report["api_errors"] == {"devices": 0, "chart": 0}
    assert 0 < report["api_devices_p50_ms"] <= report["api_devices_p99_ms"]
    assert 0 < report["api_chart_p50_ms"] <= report["api_chart_p99_ms"]
    assert set(report["cpu_seconds"]) == KINDS
    assert report["cpu_seconds"]["scan_worker"] > 0 and report["cpu_seconds"]["publisher"] > 0
    assert sum(report["cpu_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert report["readings_per_cpu_s"]["scan_worker"] > 0 and report["predictions_per_cpu_s"] > 0


def test_bench_client_restates_the_apps_routing() -> None:
    from gridmon import celery as wiring
    from gridmon.bench import fleet_stack

    assert fleet_stack.QUEUES == wiring.QUEUES and fleet_stack.SERIALIZER == wiring.SERIALIZER
    assert wiring.app.conf.task_default_exchange == fleet_stack.EXCHANGE
    assert wiring.app.conf.task_routes["workers.maintenance.*"]["queue"] == fleet_stack.QUEUE_MAINTENANCE
