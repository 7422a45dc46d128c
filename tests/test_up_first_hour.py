"""A newcomer's first hour with `make run`, end to end: `gridmon up` (external mode, against a
private Mosquitto and Redis and a database of its own), its demo simulator, Ctrl-C, a restart.

- Ctrl-C mid-stream stops in dependency order and strands nothing: every reading the simulator
  published is stored, and the console says the ingest queue was drained.
- The stop is a planned pipeline outage: a scan two minutes into it, and the scans after the
  restart, raise no `no_data` alert; the bridge's heartbeat gap is recorded too.
- The console is short and human; the detailed logs are in `.gridmon/logs/`, per-batch and
  heartbeat lines at DEBUG.
- The first start backfills history: within minutes there is a model version, a maintenance
  outlook for every profiled device, the degrading transformer dated before it fails, alerts that
  all match the simulator's ground truth; `scripts/screenshots.py` photographs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gridmon.config import REPO_ROOT, Settings
from gridmon.domain.units import DAY_S
from gridmon.simulator.demo import demo_degradation, fleet_profiles
from gridmon.simulator.identity import fleet_file, load_identity
from gridmon.simulator.truth import read_truth
from tests.up_support import UpRun, private_services, simulator_published, start_up, wait_until_api

pytestmark = pytest.mark.slow

PIPELINE_GAP_S = Settings().pipeline_gap_s
NO_DATA = "SELECT count(*) FROM alerts WHERE metric = 'no_data'"


def scan_at(run: UpRun, now: float) -> None:
    run.python(f"from gridmon.jobs.scan import run_scan; run_scan(now={now!r})")


def assert_human_console(text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the console is empty"
    assert not [line for line in lines if line.startswith("ts=") or " level=" in line], "machine log lines"
    assert "\\u" not in text and "setup plugin" not in text
    # (a generated secret is printed whole, however long the line)
    wide = [line for line in lines if len(line) > 100 and "generated" not in line]
    assert wide == [], "lines that wrap"
    timed = [line for line in lines if re.match(r"\d\d:\d\d:\d\d  ", line)]
    assert len(timed) >= len(lines) - 2, text


def test_ctrl_c_mid_stream_stores_every_reading_and_the_restart_pages_nobody(tmp_path: Path) -> None:
    settings: dict[str, str | int | float] = {"demo_devices": 40, "demo_history_days": 0, "scan_interval_s": 5}
    with private_services(tmp_path, "up_stop") as services:
        run = start_up(tmp_path, services, settings=settings)
        try:
            assert run.wait_for("SELECT count(*) >= 300 FROM sensor_readings", 180), run.console()[-3000:]
        finally:
            stopped_at = time.time()
            code = run.stop()
        stop_returned = time.time()  # the bridge marked its last listening moment before this
        console = run.console()
        assert code == 0, console[-3000:]

        # Every reading the simulator published is stored: the bridge handed its last batch to an
        # ingest worker that was still consuming.
        assert run.scalar("SELECT count(*) FROM sensor_readings") == simulator_published(run.log("simulator"))
        order = [console.index(f"stopped {name}") for name in ("simulator", "bridge", "worker-ingest", "beat")]
        assert order == sorted(order), console[-2000:]
        assert "ingest queue drained" in console
        assert "(exit code" not in console  # every child, the API included, stopped cleanly

        # The console is for people; the details are in the logs, routine lines only at DEBUG.
        assert_human_console(console)
        assert "logger=gridmon.up.run" in run.log("up")
        assert "batch handed over" not in run.log("bridge")
        for name in ("worker-ingest", "worker-analytics", "beat"):
            assert "ingest_batch" not in run.log(name) and "beat_heartbeat" not in run.log(name), name
        assert "readings/s" in console

        # The stop is a planned outage: two minutes into it, a scan blames no device.
        assert run.scalar("SELECT count(*) FROM pipeline_outages WHERE ended_at IS NULL") == 1
        scan_at(run, stopped_at + 120)
        assert run.scalar(NO_DATA) == 0

        stored = run.scalar("SELECT count(*) FROM sensor_readings")
        # A silence shorter than pipeline_gap_s is by design no gap, and a restart can be quicker
        # than that: the restart waits until the bridge's last mark (written as it stopped) is older.
        time.sleep(max(0.0, stop_returned + PIPELINE_GAP_S + 1.0 - time.time()))
        again = start_up(tmp_path, services, name="up-again", settings=settings)
        restarted = time.time()
        try:
            assert again.wait_for(f"SELECT count(*) > {stored} + 100 FROM sensor_readings", 180)
            assert again.wait_for("SELECT count(*) = 0 FROM pipeline_outages WHERE ended_at IS NULL", 10)
            # The bridge noticed the gap in its own heartbeat, and a scan stored it.
            assert again.wait_for("SELECT count(*) FROM pipeline_outages WHERE reason = 'heartbeat_gap'", 120)
            assert again.wait_for("SELECT updated_at > to_timestamp(%s) FROM scan_state", 120, restarted + 10)
            assert again.scalar(NO_DATA) == 0
        finally:
            assert again.stop() == 0, again.console()[-3000:]
        assert again.scalar("SELECT count(*) FROM sensor_readings") == simulator_published(again.log("simulator"))
        assert "the previous stop is recorded as a pipeline outage" in again.console()


def test_first_start_shows_history_a_model_an_outlook_and_only_true_alerts(tmp_path: Path) -> None:
    settings: dict[str, str | int | float] = {"demo_devices": 6, "demo_history_days": 1.5, "scan_interval_s": 10}
    with private_services(tmp_path, "up_demo") as services:
        run = start_up(tmp_path, services, settings=settings)
        try:
            wait_until_api(run, timeout=300)
            started = time.time()
            assert run.wait_for("SELECT count(*) FROM model_versions", 300), run.console()[-3000:]
            assert run.wait_for("SELECT count(DISTINCT device_id) = 6 FROM maintenance_predictions", 300)
            assert time.time() - started < 300

            # A day and a half of history for every device, each with a profile.
            [(span, devices)] = run.rows(
                "SELECT min(span), count(*) FROM (SELECT extract(epoch FROM max(ts) - min(ts)) AS span"
                " FROM sensor_readings GROUP BY device_id) s"
            )
            assert devices == 6 and float(span) > 1.4 * 86400
            assert run.scalar("SELECT count(*) FROM devices WHERE kind IS NOT NULL AND location IS NOT NULL") == 6

            # The degrading transformer is dated before it fails, close to the truth.
            identity = load_identity(fleet_file(run.data_dir))
            assert identity is not None
            degradation = demo_degradation(identity, fleet_profiles(identity, 6))
            assert degradation is not None
            risk, failure = run.rows(
                "SELECT risk_level, extract(epoch FROM predicted_failure_date) FROM maintenance_predictions"
                " WHERE device_id = %s ORDER BY computed_at DESC LIMIT 1",
                degradation.device_id,
            )[0]
            assert risk in ("high", "critical")
            assert time.time() < float(failure) and abs(float(failure) - degradation.failure_at) < 86400

            # Once a scan covered the history, every alert is one of the simulator's faults.
            backfilled = run.scalar("SELECT count(*) FROM sensor_readings WHERE ts < to_timestamp(%s)", started - 60)
            assert run.wait_for("SELECT sum(readings) >= %s FROM scan_state", 300, backfilled)
            truth = read_truth(run.data_dir / "simulator" / "truth.jsonl")
            assert truth
            truth.append(degradation.fault())  # in progress: its line is written when it ends
            alerts = run.rows(
                "SELECT device_id, metric, severity, extract(epoch FROM opened_at)::float8,"
                " extract(epoch FROM last_seen_at)::float8 FROM alerts"
            )
            assert alerts
            first_seen = dict(run.rows("SELECT device_id, extract(epoch FROM first_seen)::float8 FROM devices"))
            false = []
            first_day = []
            for device, metric, severity, opened, last in alerts:
                live = last > started - 60  # a live fault may still be running: its truth comes at its end
                if live or any(f.device_id == device and f.start - 130 <= last and opened <= f.end + 130 for f in truth):
                    continue
                # Known limitation of the streaming detector (not of the demo), measured by `gridmon eval
                # noise`: its first thresholds, fitted on a device's first few thousand readings, are too
                # narrow, and in its first day a new device pages 2.5-4.5 times the budget of 0.05 a day
                # (4.5-10 times before the on-delay, when low alerts 12 minutes, 55 minutes and 4.7 hours
                # in were seen here). A low alert then is that
                # limit; a higher severity, or a false alert after the first day, is a false page.
                if severity == "low" and opened < first_seen[device] + DAY_S:
                    first_day.append((device, metric, opened, last))
                else:
                    false.append((device, metric, opened, last))
            assert false == [], f"alerts without a fault: {false}"
            # no more than there are devices: one a device-day is above every first-day rate measured
            # there but the Student-t (0.125-0.225 a day)
            assert len(first_day) <= len(first_seen), f"first-day low alerts without a fault: {first_day}"

            # README's pictures, from this run.
            out = tmp_path / "shots"
            done = subprocess.run(
                [sys.executable, str(REPO_ROOT / "scripts" / "screenshots.py"), "--url", run.api_url, "--out", str(out)],
                env=run.env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            shots = {p.name: p.stat().st_size for p in out.glob("*.png")}
            assert set(shots) == {"fleet.png", "device.png", "alerts.png", "models.png"}
            assert min(shots.values()) > 20_000
        finally:
            assert run.stop() == 0, run.console()[-3000:]
