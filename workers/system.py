"""System tasks: the beat heartbeat (proves beat schedules and a worker consumes)."""

from __future__ import annotations

import time

from gridmon.celery import app
from gridmon.heartbeat import BEAT, beat_key, write_heartbeat


@app.task(name="workers.system.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> float:
    """Record that beat's schedule reached a worker."""
    now = time.time()
    write_heartbeat(beat_key(), now, BEAT)
    return now
