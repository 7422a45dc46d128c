"""API: devices (list, paging, detail statistics, profile) and readings (raw and bucketed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api_support import ADMIN, ClientFactory, add_alert, add_readings, bearer, make_client, ts

__all__ = ["make_client"]  # the fixture, re-exported for pytest

T0 = ts("2026-01-01T00:00:00")


def _ten_minutes(conn, device: str = "dev-a") -> None:
    """20 readings, every 30 s from T0: voltage 220 + minute, current = index, temperature 40."""
    rows = [(T0 + timedelta(seconds=30 * k), 220.0 + k // 2, float(k), 40.0) for k in range(20)]
    add_readings(conn, device, rows)


def test_list_devices_pages_by_id_with_status_and_alert_counts(db, make_client: ClientFactory) -> None:
    now = datetime.now(UTC)
    for name in ("d1", "d2", "d3", "d4", "d5"):
        add_readings(db, name, [(now - timedelta(seconds=10), 230.0, 4.0, 40.0)])
    add_readings(db, "d0-old", [(now - timedelta(hours=2), 230.0, 4.0, 40.0)])
    add_alert(db, "d2", "voltage")
    acked = add_alert(db, "d2", "temperature")
    db.execute("UPDATE alerts SET state = 'acknowledged' WHERE id = %s", (acked,))
    client = make_client()

    first = client.get("/devices", params={"limit": 4})
    assert first.status_code == 200
    page = first.json()
    assert [d["device_id"] for d in page["items"]] == ["d0-old", "d1", "d2", "d3"]
    assert page["items"][0]["status"] == "stale"
    assert page["items"][1]["status"] == "online"
    d2 = page["items"][2]
    assert (d2["open_alerts"], d2["acknowledged_alerts"]) == (1, 1)
    assert page["next_cursor"]

    second = client.get("/devices", params={"limit": 4, "cursor": page["next_cursor"]}).json()
    assert [d["device_id"] for d in second["items"]] == ["d4", "d5"]
    assert second["next_cursor"] is None

    stale = client.get("/devices", params={"status": "stale"}).json()
    assert [d["device_id"] for d in stale["items"]] == ["d0-old"]


def test_list_devices_rejects_bad_page_size_and_cursor(db, make_client: ClientFactory) -> None:
    client = make_client()
    too_big = client.get("/devices", params={"limit": 501})
    assert too_big.status_code == 422
    assert "limit" in too_big.json()["detail"]
    assert too_big.json()["errors"][0]["loc"] == ["query", "limit"]
    assert client.get("/devices", params={"cursor": "bm90LWpzb24"}).status_code == 400


def test_device_detail_has_window_statistics(db, make_client: ClientFactory) -> None:
    now = datetime.now(UTC)
    recent = [(now - timedelta(minutes=m), 220.0 + m, 2.0 * m, 30.0 + m) for m in (1, 2, 3)]
    old = [(now - timedelta(hours=3), 300.0, 9.0, 70.0)]
    add_readings(db, "dev-s", recent + old)
    client = make_client()

    body = client.get("/devices/dev-s", params={"window": "1h"}).json()
    stats = body["stats"]
    assert stats["count"] == 3
    assert stats["voltage"] == {"avg": pytest.approx(222.0), "min": 221.0, "max": 223.0}
    assert stats["current"] == {"avg": pytest.approx(4.0), "min": 2.0, "max": 6.0}
    assert stats["temperature"]["max"] == 33.0
    assert body["latest_reading"]["voltage"] == 221.0

    wide = client.get("/devices/dev-s", params={"window": "6h"}).json()["stats"]
    assert wide["count"] == 4 and wide["voltage"]["max"] == 300.0


def test_unknown_device_is_404_and_bad_id_422(db, make_client: ClientFactory) -> None:
    client = make_client()
    missing = client.get("/devices/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    assert client.get("/devices/bad%20id").status_code == 422
    assert client.get("/devices/x", params={"window": "2y"}).status_code == 422
    assert client.get("/devices/nope/readings").status_code == 404


def test_put_profile_sets_and_clears_fields(db, make_client: ClientFactory) -> None:
    add_readings(db, "tx-1", [(T0, 400.0, 5.0, 40.0)])
    client = make_client()
    profile = {"kind": "transformer", "location": "Substation 4", "nominal_voltage": 400, "temperature_limit": 95}
    put = client.put("/devices/tx-1", json=profile, headers=bearer(ADMIN))
    assert put.status_code == 200
    assert put.json()["profile"] == {
        **profile,
        "nominal_voltage": 400.0,
        "temperature_limit": 95.0,
        "rated_current": None,
    }
    stored = db.execute("SELECT kind, nominal_voltage, temperature_limit FROM devices WHERE device_id = 'tx-1'")
    assert stored.fetchone() == ("transformer", 400.0, 95.0)

    # PUT replaces the whole profile: what is left out goes back to the defaults.
    assert client.put("/devices/tx-1", json={"kind": "meter"}, headers=bearer(ADMIN)).status_code == 200
    assert db.execute("SELECT kind, nominal_voltage FROM devices WHERE device_id = 'tx-1'").fetchone() == (
        "meter",
        None,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"nominal_voltage": -5},
        {"nominal_voltage": 5000},
        {"temperature_limit": "hot"},
        {"kind": "Transformer!"},
        {"location": "a\u0000b"},
        {"colour": "red"},
    ],
)
def test_put_profile_validates(db, make_client: ClientFactory, body: dict) -> None:
    add_readings(db, "tx-2", [(T0, 230.0, 5.0, 40.0)])
    response = make_client().put("/devices/tx-2", json=body, headers=bearer(ADMIN))
    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid request")


def test_put_unknown_device_is_404(db, make_client: ClientFactory) -> None:
    response = make_client().put("/devices/ghost", json={"kind": "meter"}, headers=bearer(ADMIN))
    assert response.status_code == 404


def test_raw_readings_are_bounded_and_continue(db, make_client: ClientFactory) -> None:
    _ten_minutes(db)
    client = make_client()
    params = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "limit": 15}
    first = client.get("/devices/dev-a/readings", params=params).json()
    assert len(first["readings"]) == 15 and first["truncated"] is True
    assert ts(first["next_start"]) == T0 + timedelta(seconds=30 * 15)
    rest = client.get("/devices/dev-a/readings", params={**params, "start": first["next_start"]}).json()
    assert [r["current"] for r in rest["readings"]] == [15.0, 16.0, 17.0, 18.0, 19.0]
    assert rest["truncated"] is False and rest["next_start"] is None


def test_bucketed_readings_have_the_right_numbers(db, make_client: ClientFactory) -> None:
    _ten_minutes(db)
    _ten_minutes(db, "dev-other")  # must not leak into dev-a's buckets
    client = make_client()
    params = {"start": "2026-01-01T00:00:00", "end": "2026-01-01T00:10:00"}

    minute = client.get("/devices/dev-a/readings", params={**params, "bucket": "1m"}).json()
    assert minute["readings"] is None and len(minute["buckets"]) == 10
    third = minute["buckets"][3]
    assert ts(third["start"]) == T0 + timedelta(minutes=3)
    assert third["count"] == 2
    assert third["voltage"] == {"avg": 223.0, "min": 223.0, "max": 223.0}
    assert third["current"] == {"avg": 6.5, "min": 6.0, "max": 7.0}

    five = client.get("/devices/dev-a/readings", params={**params, "bucket": "5m"}).json()["buckets"]
    assert [b["count"] for b in five] == [10, 10]
    assert five[1]["current"]["avg"] == pytest.approx(14.5)
    assert five[1]["voltage"]["min"] == 225.0 and five[1]["voltage"]["max"] == 229.0

    day = client.get("/devices/dev-a/readings", params={**params, "bucket": "1d"}).json()["buckets"]
    assert len(day) == 1 and day[0]["count"] == 20 and ts(day[0]["start"]) == T0


def test_readings_range_limits(db, make_client: ClientFactory) -> None:
    _ten_minutes(db)
    client = make_client()
    url = "/devices/dev-a/readings"
    backwards = client.get(url, params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
    assert backwards.status_code == 422 and "before" in backwards.json()["detail"]
    raw_long = client.get(url, params={"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
    assert raw_long.status_code == 422 and "bucket" in raw_long.json()["detail"]
    too_many = client.get(url, params={"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z", "bucket": "1m"})
    assert too_many.status_code == 422 and "buckets" in too_many.json()["detail"]
    hourly = client.get(url, params={"start": "2025-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "bucket": "1h"})
    assert hourly.status_code == 200 and sum(b["count"] for b in hourly.json()["buckets"]) == 20
    assert client.get(url, params={"limit": 10_001}).status_code == 422
    assert client.get(url, params={"bucket": "2m"}).status_code == 422
