"""API: alerts (filters, keyset pages, ack, resolve) and dead letters (list, replay)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from gridmon.domain.readings import dead_letter
from gridmon.storage.dead_letters import write_dead_letters
from tests.api_support import ADMIN, ClientFactory, add_alert, bearer, make_client

__all__ = ["make_client"]


def _alerts(db) -> dict[str, int]:
    now = time.time()
    ids = {
        "a-volt": add_alert(db, "a", "voltage", severity="high", opened_at=now - 3600),
        "a-temp": add_alert(db, "a", "temperature", severity="critical", opened_at=now - 1800),
        "b-volt": add_alert(db, "b", "voltage", severity="low", opened_at=now - 600),
        "b-cur": add_alert(db, "b", "current", severity="medium", opened_at=now - 60),
    }
    db.execute("UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE id = %s", (ids["a-volt"],))
    return ids


def test_alerts_filters(db, make_client: ClientFactory) -> None:
    ids = _alerts(db)
    client = make_client()

    def listed(**params) -> list[int]:
        response = client.get("/alerts", params=params)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert listed() == sorted(ids.values(), reverse=True)
    assert listed(device="a") == [ids["a-temp"], ids["a-volt"]]
    assert listed(severity=["critical", "low"]) == [ids["b-volt"], ids["a-temp"]]
    assert listed(state="open") == [ids["b-cur"], ids["b-volt"], ids["a-temp"]]
    assert listed(state="resolved") == [ids["a-volt"]]
    since = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
    assert listed(since=since) == [ids["b-cur"], ids["b-volt"]]
    assert listed(device="b", severity="critical") == []
    assert client.get("/alerts", params={"severity": "urgent"}).status_code == 422
    assert client.get("/alerts", params={"state": "closed"}).status_code == 422


def test_alerts_keyset_pages_cover_everything_once(db, make_client: ClientFactory) -> None:
    now = time.time()
    # One unresolved alert per (device, metric): 7 devices x 1 metric.
    made = [add_alert(db, f"p{k}", "voltage", opened_at=now - k) for k in range(7)]
    client = make_client()
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/alerts", params=params).json()
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(made, reverse=True)


def test_get_alert_and_404(db, make_client: ClientFactory) -> None:
    alert_id = add_alert(db, "a", "voltage")
    client = make_client()
    body = client.get(f"/alerts/{alert_id}").json()
    assert body["device_id"] == "a" and body["state"] == "open" and body["severity"] == "high"
    assert client.get("/alerts/999999").status_code == 404
    assert client.get("/alerts/0").status_code == 422
    assert client.get(f"/alerts/{2**63}").status_code == 422


def test_ack_then_resolve_writes_outbox_events(db, make_client: ClientFactory) -> None:
    alert_id = add_alert(db, "a", "voltage")
    client = make_client()
    admin = bearer(ADMIN)

    acked = client.post(f"/alerts/{alert_id}/ack", json={"note": "crew dispatched"}, headers=admin)
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged" and acked.json()["ack_note"] == "crew dispatched"
    assert acked.json()["acked_at"] is not None

    resolved = client.post(f"/alerts/{alert_id}/resolve", headers=admin)
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_reason"] == "operator"
    events = [
        row[0] for row in db.execute("SELECT event FROM alert_outbox WHERE alert_id = %s ORDER BY id", (alert_id,))
    ]
    assert events[-1] == "resolved"

    # Resolving again changes nothing; acknowledging a resolved alert is a conflict.
    assert client.post(f"/alerts/{alert_id}/resolve", headers=admin).json()["state"] == "resolved"
    conflict = client.post(f"/alerts/{alert_id}/ack", json={"note": "late"}, headers=admin)
    assert conflict.status_code == 409 and "resolved" in conflict.json()["detail"]


def test_ack_without_body_and_unknown_alert(db, make_client: ClientFactory) -> None:
    alert_id = add_alert(db, "a", "voltage")
    client = make_client()
    admin = bearer(ADMIN)
    assert client.post(f"/alerts/{alert_id}/ack", headers=admin).json()["ack_note"] is None
    assert client.post("/alerts/424242/ack", json={"note": "x"}, headers=admin).status_code == 404
    assert client.post("/alerts/424242/resolve", headers=admin).status_code == 404
    assert client.post(f"/alerts/{alert_id}/ack", json={"note": "x" * 2001}, headers=admin).status_code == 422
    assert client.post(f"/alerts/{alert_id}/ack", json={"note": "a\u0000"}, headers=admin).status_code == 422


def _dead(db, *letters: tuple[str, bytes, str]) -> list[int]:
    with db.transaction(), db.cursor() as cur:
        write_dead_letters(
            cur, [dead_letter(time.time(), topic, payload, reason, "test", keep_bytes=8192) for topic, payload, reason in letters]
        )
    return [row[0] for row in db.execute("SELECT id FROM dead_letters ORDER BY id")]


def test_dead_letters_list_filter_and_page(db, make_client: ClientFactory) -> None:
    ids = _dead(
        db,
        ("grid/sensors/x", b"not json", "not_json"),
        ("grid/sensors/y", b"\xff\xfe binary", "not_json"),
        ("grid/sensors/z", b'{"voltage": 2000}', "out_of_physical_range"),
    )
    client = make_client()
    admin = bearer(ADMIN)
    everything = client.get("/dead-letters", headers=admin).json()
    assert [d["id"] for d in everything["items"]] == ids[::-1]
    assert everything["items"][1]["payload"].endswith(" binary")
    assert everything["items"][2]["payload"] == "not json" and everything["items"][2]["payload_size"] == 8

    not_json = client.get("/dead-letters", params={"reason": "not_json", "limit": 1}, headers=admin).json()
    assert [d["id"] for d in not_json["items"]] == [ids[1]]
    rest = client.get(
        "/dead-letters", params={"reason": "not_json", "limit": 1, "cursor": not_json["next_cursor"]}, headers=admin
    ).json()
    assert [d["id"] for d in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/dead-letters", params={"since": future}, headers=admin).json()["items"] == []


def test_replay_stores_a_now_valid_payload_and_deletes_the_dead_letter(db, make_client: ClientFactory) -> None:
    payload = json.dumps({"timestamp": "2026-01-01T00:00:00Z", "voltage": 231.5, "current": 4.0, "temperature": 41.0})
    bad = b'{"timestamp": "2026-01-01T00:00:00Z", "voltage": "high", "current": 4, "temperature": 41}'
    good_id, bad_id = _dead(
        db, ("grid/sensors/meter-9", payload.encode(), "future_timestamp"), ("grid/sensors/m", bad, "x")
    )
    client = make_client()
    admin = bearer(ADMIN)

    replayed = client.post(f"/dead-letters/{good_id}/replay", headers=admin)
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["device_id"] == "meter-9" and body["stored"] is True and body["reading"]["voltage"] == 231.5
    row = db.execute("SELECT voltage FROM sensor_readings WHERE device_id = 'meter-9'").fetchone()
    assert row == (231.5,)
    assert db.execute("SELECT count(*) FROM dead_letters WHERE id = %s", (good_id,)).fetchone() == (0,)

    rejected = client.post(f"/dead-letters/{bad_id}/replay", headers=admin)
    assert rejected.status_code == 422
    assert rejected.json()["reason"] == "non_numeric" and "voltage" in rejected.json()["detail"]
    assert db.execute("SELECT count(*) FROM dead_letters WHERE id = %s", (bad_id,)).fetchone() == (1,)
    assert client.post(f"/dead-letters/{good_id}/replay", headers=admin).status_code == 404
