"""Dashboard server side: the page and its files, the safe ranges, the fleet summary, and the live
event stream (access rules, Redis alert messages, fan-out) against the real database and Redis.

The stream is read from a real uvicorn server in a thread (`ServerThread`, also used by the
browser tests): a never-ending response needs a real HTTP connection.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from gridmon.api import create_app
from gridmon.api.dashboard.assets import STATIC_DIR, plotly_bundle
from gridmon.api.dashboard.hub import RESYNC, LiveEvent, LiveHub
from gridmon.api.dashboard.router import event_stream
from gridmon.config import Settings
from gridmon.domain.alerts import AnomalyAlert
from gridmon.jobs.publish import CHANNEL, message_bytes
from gridmon.services.mosquitto import free_port
from gridmon.services.procs import wait_until
from gridmon.storage.fleet import FleetSummary, fetch_summary
from tests.api_support import ADMIN, READER, WRONG, ClientFactory, add_alert, add_readings, bearer, make_client
from tests.conftest import TEST_REDIS_URL

__all__ = ["make_client"]  # the fixture, re-exported for pytest


class ServerThread:
    """`app` served by uvicorn on a free local port from a daemon thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        if not wait_until(lambda: self.server.started, timeout=30):
            raise RuntimeError(f"uvicorn did not start on port {self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def app_with(read: str | None = READER, admin: str | None = ADMIN, redis_url: str = TEST_REDIS_URL) -> FastAPI:
    return create_app(Settings.model_validate({"admin_token": admin, "read_token": read, "redis_url": redis_url}))


def read_events(lines: Iterator[str], until: str, *, match: dict[str, Any] | None = None) -> list[LiveEvent]:
    """Parse `text/event-stream` lines (`response.iter_lines()`, one iterator per response) until
    an event named `until` (whose data contains `match`, if given) arrived; returns every event."""
    events: list[LiveEvent] = []
    name, data, event_id = "message", b"", None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:].encode()
        elif line == "" and data:
            event = LiveEvent(name, orjson.loads(data), event_id)
            events.append(event)
            name, data, event_id = "message", b"", None
            if event.name == until and all(event.data.get(k) == v for k, v in (match or {}).items()):
                return events
    raise AssertionError(f"stream ended before a {until!r} event: {[e.name for e in events]}")


def alert_message(device: str, event_id: int, episode_id: int = 7) -> bytes:
    now = datetime.now(UTC).timestamp()
    alert = AnomalyAlert(
        device_id=device,
        ts=now,
        metric="voltage",
        value=260.0,
        severity="high",
        detector="safety",
        score=None,
        description="voltage 260.0 above 250.0",
        episode_id=episode_id,
        event="opened",
        state="open",
        opened_at=now,
        last_seen_at=now,
        resolved_at=None,
        readings_count=1,
    )
    return message_bytes(event_id, alert.to_dict())


# --- the page and its files ---------------------------------------------------------------


def test_page_and_every_module_it_imports_are_served(db, make_client: ClientFactory) -> None:
    client = make_client(read=READER)  # the page itself holds no data: open even with a read token
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    wanted = set(re.findall(r'(?:src|href)="/ui/([a-z0-9_.-]+)"', page.text))
    for module in STATIC_DIR.glob("*.js"):
        wanted |= set(re.findall(r'from "\./([a-z0-9_.-]+)"', module.read_text()))
    assert {"app.js", "style.css", "favicon.svg", "api.js", "device.js", "live.js"} <= wanted
    for name in sorted(wanted):
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    for bad in ("nope.js", "..%2Fhub.py", "router.py", ".hidden.js"):
        assert client.get(f"/ui/{bad}").status_code == 404, bad
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p == "/" or p.startswith(("/ui", "/live")) for p in paths)


def test_plotly_comes_from_the_installed_package(db, make_client: ClientFactory) -> None:
    client = make_client()
    bundle = plotly_bundle()
    plain = client.get("/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.content == bundle.plain
    assert b"window.Plotly" in plain.content
    zipped = client.get("/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == bundle.plain  # httpx decodes
    assert len(bundle.gzipped) < len(bundle.plain) / 2 and gzip.decompress(bundle.gzipped) == bundle.plain
    again = client.get("/ui/vendor/plotly.min.js", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


# --- safe ranges -----------------------------------------------------------------------------


def test_safe_ranges_follow_the_profile_and_read_access(db, make_client: ClientFactory) -> None:
    now = datetime.now(UTC)
    add_readings(db, "meter-120", [(now, 120.0, 4.0, 40.0)])
    add_readings(db, "plain", [(now, 230.0, 4.0, 40.0)])
    client = make_client(read=READER)
    assert client.get("/ui/limits/plain").status_code == 401
    profile = {"nominal_voltage": 120.0, "temperature_limit": 65.0}
    assert client.put("/devices/meter-120", json=profile, headers=bearer(ADMIN)).status_code == 200
    ranges = client.get("/ui/limits/meter-120", headers=bearer(READER)).json()
    assert ranges["voltage"] == pytest.approx([108.0, 132.0])
    assert ranges["current"] == [0.0, 10.0]
    assert ranges["temperature"] == [0.0, 65.0]
    assert ranges["from_profile"] == ["voltage", "temperature"]
    plain = client.get("/ui/limits/plain", headers=bearer(READER)).json()
    assert (plain["voltage"], plain["from_profile"]) == ([200.0, 250.0], [])
    assert client.get("/ui/limits/nobody", headers=bearer(READER)).status_code == 404
    assert client.get("/ui/limits/plain?x=1", headers=bearer(READER)).status_code == 422


# --- the summary -----------------------------------------------------------------------------


def test_summary_counts_devices_readings_and_open_alerts(db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    add_readings(db, "fresh-a", [(now - timedelta(seconds=s), 230.0, 4.0, 40.0) for s in (1, 2, 3)])
    add_readings(db, "fresh-b", [(now, 230.0, 4.0, 40.0)])
    add_readings(db, "silent", [(now - timedelta(hours=3), 230.0, 4.0, 40.0)])
    add_alert(db, "fresh-a", "voltage", severity="high")
    add_alert(db, "fresh-a", "current", severity="critical")
    add_alert(db, "fresh-b", "voltage", severity="high")
    acked = add_alert(db, "silent", "temperature", severity="low")
    gone = add_alert(db, "silent", "voltage", severity="medium")
    db.execute("UPDATE alerts SET state = 'acknowledged' WHERE id = %s", (acked,))
    db.execute("UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE id = %s", (gone,))
    # Every row was ingested just now: a window of an hour holds all five.
    summary = fetch_summary(db, window_s=3600.0)
    assert (summary.readings, summary.devices_reporting) == (5, 3)
    assert (summary.devices_total, summary.devices_online) == (3, 2)
    assert summary.open_alerts == {"low": 0, "medium": 0, "high": 2, "critical": 1}
    assert summary.acknowledged_alerts == 1
    data = summary.to_dict()
    assert data["readings_per_s"] == round(5 / 3600.0, 2)
    assert data["devices"] == {"total": 3, "online": 2, "stale": 1}
    db.execute("UPDATE sensor_readings SET ingested_at = now() - interval '1 hour'")
    assert fetch_summary(db, window_s=60.0).readings == 0


# --- the stream ------------------------------------------------------------------------------


@pytest.fixture()
def server(db) -> Iterator[ServerThread]:
    with ServerThread(app_with()) as running:
        yield running


def session_cookie(client: httpx.Client, base: str, token: str) -> httpx.Cookies:
    """The session cookie `POST /ui/session` sets for `token`."""
    response = client.post(base + "/ui/session", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert "HttpOnly" in response.headers["set-cookie"] and "SameSite=Strict" in response.headers["set-cookie"]
    return response.cookies


def test_stream_follows_the_read_rules(server: ServerThread) -> None:
    url = server.url + "/live/events"
    with httpx.Client(timeout=10) as client:
        refused = client.get(url)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert client.get(url, headers=bearer(WRONG)).status_code == 401
        # A token in the URL is no longer taken: the parameter does not exist.
        assert client.get(url, params={"token": READER}, headers=bearer(READER)).status_code == 422
        assert client.post(server.url + "/ui/session", headers=bearer(WRONG)).status_code == 401
        for cookies, headers in (
            (session_cookie(client, server.url, READER), {}),
            (session_cookie(client, server.url, ADMIN), {}),
            (None, bearer(READER)),
        ):
            client.cookies.clear()
            with client.stream("GET", url, headers=headers, cookies=cookies) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = read_events(response.iter_lines(), until="summary")
                assert events[0].name == "hello"


def test_streams_are_capped_per_client_and_in_total(db) -> None:
    settings = Settings.model_validate(
        {"admin_token": ADMIN, "read_token": None, "redis_url": TEST_REDIS_URL, "live_max_streams_per_client": 2}
    )
    with ServerThread(create_app(settings)) as running, httpx.Client(timeout=10) as client:
        url = running.url + "/live/events"
        with client.stream("GET", url) as first, client.stream("GET", url) as second:
            assert (first.status_code, second.status_code) == (200, 200)
            third = client.get(url)
            assert third.status_code == 503 and "GRIDMON_LIVE_MAX_STREAMS_PER_CLIENT" in third.json()["detail"]
            assert third.headers["retry-after"]
        # Both ended: their slots are free again.
        assert wait_until(lambda: running.app.state.stream_slots.open == 0, timeout=10)
        with client.stream("GET", url) as again:
            assert again.status_code == 200
    total = Settings.model_validate({"admin_token": ADMIN, "redis_url": TEST_REDIS_URL, "live_max_streams": 1})
    with (
        ServerThread(create_app(total)) as running,
        httpx.Client(timeout=10) as client,
        client.stream("GET", running.url + "/live/events") as first,
    ):
        assert first.status_code == 200
        refused = client.get(running.url + "/live/events")
        assert refused.status_code == 503 and "GRIDMON_LIVE_MAX_STREAMS" in refused.json()["detail"]


def test_stream_is_open_without_a_read_token(db) -> None:
    with (
        ServerThread(app_with(read=None)) as open_server,
        httpx.Client(timeout=10) as client,
        client.stream("GET", open_server.url + "/live/events") as response,
    ):
        assert response.status_code == 200
        summary = read_events(response.iter_lines(), until="summary")[-1]
    assert set(summary.data) >= {"readings_per_s", "devices", "open_alerts", "acknowledged_alerts"}


def test_stream_relays_alert_messages_from_redis(server: ServerThread) -> None:
    device = f"dash-{uuid.uuid4().hex[:8]}"  # channels are server-wide: other tests may publish too
    message = alert_message(device, event_id=41)
    publisher = redis.Redis.from_url(TEST_REDIS_URL)
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", server.url + "/live/events", headers=bearer(READER)) as response,
    ):
        lines = response.iter_lines()
        read_events(lines, until="summary")  # subscribed: the hub sends summaries once it runs

        # The hub may still be subscribing after its first summary: publish until heard.
        stop = threading.Event()

        def send() -> None:
            while not stop.is_set():
                publisher.publish(CHANNEL, b"not json")
                publisher.publish(CHANNEL, orjson.dumps({"device_id": device}))  # no episode: not an alert
                publisher.publish(CHANNEL, message)
                stop.wait(0.3)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            events = read_events(lines, until="alert", match={"device_id": device})
        finally:
            stop.set()
            sender.join()
    publisher.close()
    alert = events[-1]
    assert alert.id == "41"
    assert alert.data == orjson.loads(message)  # relayed as published, `event_id` included
    assert (alert.data["severity"], alert.data["episode_id"], alert.data["event"]) == ("high", 7, "opened")
    mine = [e for e in events if e.name == "alert" and e.data.get("device_id") == device]
    assert len(mine) == 1  # the malformed messages were dropped


# --- the hub ---------------------------------------------------------------------------------


def _summary(total: int = 3) -> FleetSummary:
    counts = {"low": 0, "medium": 0, "high": 1, "critical": 0}
    return FleetSummary(datetime.now(UTC), 5.0, 10, 2, total, 2, counts, 0)


def test_hub_fans_out_and_a_slow_subscriber_is_told_to_resync() -> None:
    async def scenario() -> tuple[list[str], list[str], bool, bool]:
        hub = LiveHub(TEST_REDIS_URL, summary=_summary, interval_s=3600.0, queue_size=3)
        async with hub.subscribe() as fast, hub.subscribe() as slow:
            first = await asyncio.wait_for(fast.get(), 10)  # the first summary
            await asyncio.wait_for(slow.get(), 10)
            running = hub.running
            got: list[str] = [first.name]
            for n in range(5):
                hub.broadcast(LiveEvent("alert", {"episode_id": n}))
                got.append((await fast.get()).name)
            behind = []
            while not slow.empty():
                behind.append(slow.get_nowait().name)
        return got, behind, running, hub.running

    got, behind, running, after = asyncio.run(scenario())
    assert got == ["summary"] + ["alert"] * 5
    assert behind == [RESYNC.name, "alert"]  # overflowed at the 4th: backlog replaced by resync
    assert (running, after) == (True, False)  # the loops stop with the last subscriber


def test_hub_reports_an_unreachable_database_and_its_return(migrated_database: str) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/gridmon"  # nothing listens there
    url = closed

    def summary() -> FleetSummary:  # the hub's own read, against a real server or none
        with psycopg.connect(url, connect_timeout=2) as conn:
            return fetch_summary(conn)

    async def scenario() -> list[LiveEvent]:
        nonlocal url
        hub = LiveHub(TEST_REDIS_URL, summary=summary, interval_s=0.05)
        seen: list[LiveEvent] = []
        async with hub.subscribe() as queue:
            seen.append(await asyncio.wait_for(queue.get(), 10))
            url = migrated_database  # the database comes back
            while True:
                event = await asyncio.wait_for(queue.get(), 10)
                seen.append(event)
                if event.name == "summary":
                    return seen

    seen = asyncio.run(scenario())
    assert seen[0].name == "status" and not seen[0].data["ok"]
    problem = seen[0].data["problems"]["database"]
    # psycopg's own first line, naming the server it could not reach, and the setting to check
    assert problem.startswith("database unreachable: ") and problem.endswith(" (GRIDMON_DATABASE_URL)")
    assert closed.split(":")[-1].split("/")[0] in problem and "\n" not in problem
    assert [e.name for e in seen[1:]] == ["status", "summary"] and seen[1].data == {"ok": True, "problems": {}}
    assert seen[2].data["devices"]["total"] >= 0 and "open_alerts" in seen[2].data  # read from the database


def test_hub_reports_redis_down_and_the_stream_still_ends() -> None:
    port = free_port()  # nothing listens there

    async def scenario() -> tuple[list[bytes], int]:
        hub = LiveHub(f"redis://127.0.0.1:{port}/0", summary=_summary, interval_s=0.05)
        chunks = [chunk async for chunk in event_stream(hub, lifetime_s=1.0)]
        return chunks, hub.subscribers

    chunks, subscribers = asyncio.run(scenario())
    text = b"".join(chunks).decode()
    assert text.startswith("retry: ")
    assert "event: hello" in text and "event: summary" in text
    assert "event: status" in text and f"127.0.0.1:{port}" in text and "GRIDMON_REDIS_URL" in text
    assert subscribers == 0


def test_the_page_uses_the_one_severity_scale() -> None:
    from gridmon.domain.severity import SEVERITIES

    source = (STATIC_DIR / "dom.js").read_text()
    found = re.search(r"export const SEVERITIES = \[(.*?)\];", source)
    assert found is not None
    assert tuple(orjson.loads(f"[{found.group(1)}]")) == SEVERITIES
