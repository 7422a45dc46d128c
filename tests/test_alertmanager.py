"""Alert delivery through the real Prometheus Alertmanager (Debian's `prometheus-alertmanager`).

Alerts are made the way the pipeline makes them (`apply_findings`, the staleness check, the
API's resolve), published by the one publisher, and observed at a webhook receiver that the
project's routing tree (`deploy/alertmanager/alertmanager.yml`) points at, and through
Alertmanager's own API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridmon.alerts.tracker import apply_findings
from gridmon.config import get_settings
from gridmon.detection.base import Finding
from gridmon.jobs.publish import Publisher
from gridmon.services import procs
from gridmon.storage.alerts import resolve
from tests.alertmanager_support import AlertmanagerProcess, Webhook, am_config, binary, free_port
from tests.alerts_support import base_time, fresh_alerting, stream_events

__all__ = ["fresh_alerting"]
pytestmark = [
    pytest.mark.usefixtures("fresh_alerting"),
    pytest.mark.skipif(binary() is None, reason="prometheus-alertmanager is not installed (.ci/run installs it)"),
]


def finding(device: str, metric: str = "voltage", severity: str = "high", value: float = 258.0) -> Finding:
    return Finding(device, base_time(), metric, value, severity, "safety", 0.1, f"{metric} {value}")


@pytest.fixture()
def hook() -> Iterator[Webhook]:
    server = Webhook().start()
    yield server
    server.stop()


@pytest.fixture()
def alertmanager(tmp_path: Path, hook: Webhook) -> Iterator[AlertmanagerProcess]:
    with AlertmanagerProcess(tmp_path / "am", am_config(hook)) as process:
        yield process


def publisher_for(url: str, monkeypatch: pytest.MonkeyPatch, resend_s: float = 3600.0) -> Publisher:
    settings = get_settings()
    monkeypatch.setattr(settings, "alertmanager_url", url)
    monkeypatch.setattr(settings, "alertmanager_resend_s", resend_s)
    monkeypatch.setattr(settings, "publish_backoff_s", 0.0)
    return Publisher()


def wait_for(hook: Webhook, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    assert procs.wait_until(lambda: len(hook.notifications()) >= count, timeout, 0.1), hook.notifications()
    return hook.notifications()


def alerts_by_status(note: dict[str, Any], status: str) -> set[str]:
    return {a["labels"]["metric"] for a in note["alerts"] if a["status"] == status}


def wait_for_note(hook: Webhook, status: str, metrics: set[str], timeout: float = 30) -> dict[str, Any]:
    """The first notification whose alerts of `status` are exactly `metrics`.

    The alerts start an hour ago, so their group's wait is already over when the first one
    arrives: Alertmanager flushes the new group at once, and whether the second alert of the same
    post is in that first notification or in the next one (a group interval later) is a race."""
    def found() -> list[dict[str, Any]]:
        return [n for n in hook.notifications() if alerts_by_status(n, status) == metrics]

    assert procs.wait_until(lambda: bool(found()), timeout, 0.1), hook.notifications()
    return found()[0]


def test_open_grouped_then_resolved(db, redis_client, alertmanager, hook, monkeypatch):
    publisher = publisher_for(alertmanager.url, monkeypatch)
    db.execute("INSERT INTO devices (device_id, first_seen, last_seen, kind, location) VALUES"
               " ('tx-1', now(), now(), 'transformer', 'north')")
    apply_findings(db, [finding("tx-1"), finding("tx-1", "temperature", value=95.0)], gap_s=60)
    result = publisher.drain()
    assert (result.alertmanager, result.alertmanager_error) == (2, None)
    assert result.published == 2  # Redis got the same two events

    note = wait_for_note(hook, "firing", {"voltage", "temperature"})
    for each in hook.notifications():  # one group: every notification so far is about it
        assert each["path"] == "/operators-email" and each["status"] == "firing"
        assert each["groupLabels"] == {"alertname": "GridAnomaly", "location": "north"}
    by_metric = {a["labels"]["metric"]: a for a in note["alerts"]}
    voltage = by_metric["voltage"]
    assert voltage["labels"] == {
        "alertname": "GridAnomaly", "device": "tx-1", "metric": "voltage", "severity": "high",
        "detector": "safety", "kind": "transformer", "location": "north",
    }
    assert voltage["annotations"]["value"] == "258"
    assert voltage["annotations"]["link"].endswith("/#/device/tx-1")
    assert "expected" not in voltage["annotations"]  # a limit alert has no expected band

    pending = db.execute("SELECT count(*) FROM alert_outbox WHERE alertmanager_at IS NULL").fetchone()
    assert pending == (0,)
    alert_id = db.execute("SELECT id FROM alerts WHERE metric = 'voltage'").fetchone()[0]
    resolve(db, alert_id)
    publisher.drain()
    later = wait_for_note(hook, "resolved", {"voltage"})
    assert alerts_by_status(later, "firing") == {"temperature"}
    publisher.close()


def test_alertmanager_down_events_wait_and_go_out_when_it_returns(db, redis_client, tmp_path, hook, monkeypatch):
    port = free_port()
    publisher = publisher_for(f"http://127.0.0.1:{port}", monkeypatch)
    apply_findings(db, [finding("dev-down", severity="critical", value=280.0)], gap_s=60)
    result = publisher.drain()
    assert result.alertmanager == 0 and "Alertmanager unreachable" in (result.alertmanager_error or "")
    assert result.published == 1 and [e["event"] for e in stream_events(redis_client)] == ["opened"]
    assert db.execute("SELECT count(*) FROM alert_outbox WHERE alertmanager_at IS NULL").fetchone() == (1,)

    with AlertmanagerProcess(tmp_path / "am", am_config(hook), port=port):
        result = publisher.drain()
        assert (result.alertmanager, result.alertmanager_error, result.published) == (1, None, 0)
        [note] = wait_for(hook, 1)
        assert note["path"] == "/pager"  # critical pages
        assert note["alerts"][0]["labels"]["device"] == "dev-down"
    assert db.execute("SELECT count(*) FROM alert_outbox WHERE alertmanager_at IS NULL").fetchone() == (0,)
    publisher.close()


def test_a_silence_stops_delivery(db, redis_client, alertmanager, hook, monkeypatch):
    publisher = publisher_for(alertmanager.url, monkeypatch)
    alertmanager.silence({"device": "dev-quiet"})
    apply_findings(db, [finding("dev-quiet")], gap_s=60)
    publisher.drain()
    assert procs.wait_until(
        lambda: [a["status"]["state"] for a in alertmanager.alerts(filter='device="dev-quiet"')] == ["suppressed"], 10
    )
    # An alert that is not silenced, sent after the silenced one, is delivered: by then the
    # silenced one would have been too.
    apply_findings(db, [finding("dev-loud")], gap_s=60)
    publisher.drain()
    notes = wait_for(hook, 1)
    assert procs.wait_until(lambda: any(a["labels"]["device"] == "dev-loud" for n in hook.notifications()
                                        for a in n["alerts"]), 30)
    devices = {a["labels"]["device"] for n in hook.notifications() for a in n["alerts"]}
    assert devices == {"dev-loud"}, notes
    publisher.close()


def test_escalation_replaces_the_label_set_and_no_data_inhibits_anomalies(db, redis_client, alertmanager, monkeypatch):
    publisher = publisher_for(alertmanager.url, monkeypatch)
    apply_findings(db, [finding("dev-x", severity="medium", value=252.0)], gap_s=60)
    publisher.drain()
    apply_findings(db, [finding("dev-x", severity="critical", value=290.0)], gap_s=60)
    publisher.drain()
    active = alertmanager.alerts(filter='device="dev-x"', active="true")
    assert [(a["labels"]["severity"], a["annotations"]["value"]) for a in active] == [("critical", "290")]

    db.execute(
        "INSERT INTO alerts (device_id, metric, detector, state, severity, opened_at, last_seen_at, description, kind)"
        " VALUES ('dev-x', 'no_data', 'staleness', 'open', 'medium', now(), now(), 'no data for 600 s', 'no_data')"
    )
    db.execute(
        "INSERT INTO alert_outbox (topic, device_id, alert_id, event, payload) SELECT 'anomalies', device_id, id,"
        " 'opened', jsonb_build_object('episode_id', id, 'device_id', device_id) FROM alerts WHERE metric = 'no_data'"
    )
    publisher.drain()

    def inhibited() -> bool:
        [anomaly] = alertmanager.alerts(filter='alertname="GridAnomaly"')
        return anomaly["status"]["state"] == "suppressed" and bool(anomaly["status"]["inhibitedBy"])

    assert procs.wait_until(inhibited, 10)
    [no_data] = alertmanager.alerts(filter='alertname="GridNoData"')
    assert no_data["status"]["state"] == "active"
    publisher.close()


def test_firing_alerts_are_re_sent_before_resolve_timeout(db, redis_client, tmp_path, hook, monkeypatch):
    with AlertmanagerProcess(tmp_path / "am", am_config(hook, resolve_timeout="4s")) as process:
        publisher = publisher_for(process.url, monkeypatch, resend_s=0.5)
        apply_findings(db, [finding("dev-long")], gap_s=60)
        publisher.drain()
        first = process.alerts(filter='device="dev-long"')[0]["endsAt"]
        # Drain (as the scan and ingest paths do) past Alertmanager's resolve_timeout: every
        # drain re-sends the firing alert, so its end keeps moving and it never resolves.
        end = time.monotonic() + 6.0
        while time.monotonic() < end:
            publisher.drain()
            time.sleep(0.5)
        [alert] = process.alerts(filter='device="dev-long"')
        assert alert["status"]["state"] == "active" and alert["endsAt"] > first
        assert all(n["status"] == "firing" for n in hook.notifications())
        publisher.close()


def test_mapping_is_table_driven_and_carries_the_expected_band_when_the_row_has_one(monkeypatch):
    from datetime import UTC, datetime

    from gridmon.domain import alertmanager as am

    row = {
        "id": 7, "device_id": "d1", "metric": "current", "severity": "low", "detector": "safety",
        "state": "resolved", "opened_at": "2026-12-01T10:00:00+00:00", "resolved_at": "2026-12-01T10:05:00+00:00",
        "last_seen_at": "2026-12-01T10:04:00+00:00", "value": 7.25, "description": "current high", "kind": "limit",
        "metrics": ["current"], "expected": None, "band_lo": None, "band_hi": None, "device_location": None,
    }
    alert = am.anomaly_alert(row, "http://ops.example:8000")
    assert alert["labels"] == {"alertname": "GridAnomaly", "device": "d1", "metric": "current", "severity": "low",
                               "detector": "safety"}
    assert (alert["startsAt"], alert["endsAt"]) == ("2026-12-01T10:00:00Z", "2026-12-01T10:05:00Z")
    assert "expected" not in alert["annotations"] and "band" not in alert["annotations"]
    streaming = {**row, "state": "open", "kind": "anomaly", "detector": "stream", "metrics": ["current", "voltage"],
                 "expected": 4.0, "band_lo": 3.5, "band_hi": 4.5}
    banded = am.anomaly_alert(streaming, "http://x")
    assert {k: banded["annotations"][k] for k in ("expected", "band", "metrics")} == {
        "expected": "4", "band": "3.5 .. 4.5", "metrics": "current,voltage"
    }
    assert "endsAt" not in banded and banded["labels"]["alertname"] == "GridAnomaly"

    assert am.alertname_for({"kind": "no_data", "metric": "no_data"}) == "GridNoData"
    assert am.alertname_for({"metric": "no_data"}) == "GridNoData"  # a row from before the kind column
    assert am.anomaly_alert({**row, "kind": "data_gap"}, "http://x")["labels"]["alertname"] == "GridDataGap"
    maintenance = am.maintenance_alert(
        {"device_id": "d1", "risk_level": "high", "risk_score": 0.8, "predicted_failure_date": None,
         "computed_at": datetime(2026, 12, 1, tzinfo=UTC), "device_location": "south"},
        "http://x", firing=True, now=datetime.now(UTC),
    )
    assert maintenance["labels"] == {"alertname": "GridMaintenance", "device": "d1", "metric": "risk",
                                     "severity": "high", "detector": "maintenance", "location": "south"}


def test_shipped_config_passes_amtool():
    import shutil
    import subprocess

    from tests.alertmanager_support import DEPLOY_CONFIG

    amtool = shutil.which("amtool")
    assert amtool is not None
    subprocess.run([amtool, "check-config", str(DEPLOY_CONFIG)], check=True, capture_output=True)
