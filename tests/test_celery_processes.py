"""`celery -A gridmon worker|beat|flower` work as users type them: beat's schedule reaches a
worker (heartbeat in Redis), Flower answers behind basic auth."""

from __future__ import annotations

import base64
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from gridmon.heartbeat import beat_key
from gridmon.services import procs
from gridmon.services.mosquitto import free_port, wait_for_port
from gridmon.services.redis_server import RedisProcess

pytestmark = pytest.mark.slow


def test_beat_schedules_work_that_a_worker_runs(migrated_database: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gridmon-test-beat-"))
    with RedisProcess(workdir / "redis") as rds:
        env = procs.child_env(
            {
                "GRIDMON_DATABASE_URL": migrated_database,
                "GRIDMON_REDIS_URL": rds.url,
                "GRIDMON_BROKER_URL": rds.url,
                "GRIDMON_HEARTBEAT_INTERVAL_S": 1,
                "GRIDMON_WORKER_METRICS_PORT": 0,
            }
        )
        worker = procs.start_worker(env, workdir / "worker.log", queues="ingest", concurrency=1)
        beat = procs.start_beat(env, workdir / "beat.log", workdir / "beat-schedule")
        try:
            client = redis.Redis.from_url(rds.url)
            assert procs.wait_until(lambda: client.get(beat_key()) is not None, 60, interval=0.5), (
                (workdir / "beat.log").read_text()[-2000:]
            )
        finally:
            procs.stop(beat)
            procs.stop(worker)


def test_flower_requires_basic_auth(migrated_database: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gridmon-test-flower-"))
    port = free_port()
    with RedisProcess(workdir / "redis") as rds:
        env = procs.child_env(
            {"GRIDMON_REDIS_URL": rds.url, "GRIDMON_BROKER_URL": rds.url, "FLOWER_BASIC_AUTH": "ops:s3cret-pass"}
        )
        args = [sys.executable, "-m", "celery", "-A", "gridmon", "flower", f"--port={port}", "--address=127.0.0.1"]
        flower = procs.spawn(args, env, workdir / "flower.log")
        try:
            assert wait_for_port(port, timeout=60), (workdir / "flower.log").read_text()[-2000:]
            url = f"http://127.0.0.1:{port}/"
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(url, timeout=10)
            assert denied.value.code == 401
            request = urllib.request.Request(
                url, headers={"Authorization": "Basic " + base64.b64encode(b"ops:s3cret-pass").decode()}
            )
            assert urllib.request.urlopen(request, timeout=10).status == 200
        finally:
            procs.stop(flower)
