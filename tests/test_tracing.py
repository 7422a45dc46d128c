"""GRIDMON_TRACING=1: one trace spans the bridge's hand-off, the Celery ingest task and the
database write, across processes (context carried in the task headers)."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from gridmon.bench.stack import IngestStack
from tests.pipeline_helpers import publish, reading_payloads

pytestmark = pytest.mark.slow


def _spans(text: str) -> list[dict]:
    """Console-exporter spans (pretty-printed JSON objects) found in a log."""
    spans = []
    for block in re.findall(r"^\{\n.*?^\}$", text, flags=re.S | re.M):
        try:
            doc = json.loads(block)
        except ValueError:
            continue
        if "context" in doc and "name" in doc:
            spans.append(doc)
    return spans


def test_trace_crosses_bridge_task_and_database(migrated_database: str, db: psycopg.Connection) -> None:
    s = IngestStack(database_url=migrated_database, workers=1, extra_env={"GRIDMON_TRACING": "1"})
    try:
        s.start()
        s.start_bridge()
        s.wait_flowing()
        publish(s, [(t, p) for t, p, _ in reading_payloads(50)])
        assert s.wait_for_rows(50, 60)[0] == 50
    finally:
        s.stop()  # processes exit, flushing their spans
    bridge = _spans((s.workdir / "bridge.log").read_text())
    worker = _spans((s.workdir / "worker.log").read_text())
    handoffs = {sp["context"]["trace_id"]: sp for sp in bridge if sp["name"] == "bridge.handoff"}
    batches = [sp for sp in worker if sp["name"] == "ingest.batch"]
    writes = [sp for sp in worker if sp["name"] == "db.write"]
    assert handoffs and batches and writes
    joined = [b for b in batches if b["context"]["trace_id"] in handoffs]
    assert joined, "no ingest span joined a bridge trace"
    batch = joined[0]
    assert batch["parent_id"] == handoffs[batch["context"]["trace_id"]]["context"]["span_id"]
    assert any(w["parent_id"] == batch["context"]["span_id"] for w in writes)


def test_tracing_off_by_default_adds_no_headers() -> None:
    from gridmon import tracing

    assert not tracing.enabled()
    assert tracing.inject_headers() == {}
