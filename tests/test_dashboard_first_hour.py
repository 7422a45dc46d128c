"""The dashboard as a newcomer meets it, in Debian's headless Chromium (the setup and fixtures of
`tests/test_dashboard_browser.py`), against the API served from a thread on the real database and
Redis:

- a device with three minutes of data opens on a readable line, not on one empty bucket;
- the Retrain button asks for the token and, once it is saved, retrains (no second click);
- an alert resolved — here or by someone else — leaves the "open and acknowledged" list live;
- counts read "1 reading", "1 bucket", "1 device", not "1 readings".
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import expect

from gridmon.api import create_app
from gridmon.config import Settings
from gridmon.jobs.ingest import cached_limits, store_batch
from gridmon.jobs.publish import get_publisher
from gridmon.storage.readings import write_readings
from tests.api_support import ADMIN, bearer
from tests.conftest import TEST_REDIS_URL
from tests.test_dashboard_browser import browser, open_page
from tests.test_dashboard_live import ServerThread

__all__ = ["browser"]  # the fixture, re-exported for pytest
pytestmark = pytest.mark.slow


@pytest.fixture()
def server(db: psycopg.Connection, redis_client: Any) -> Iterator[ServerThread]:
    settings = Settings.model_validate({"admin_token": ADMIN, "read_token": None, "redis_url": TEST_REDIS_URL})
    get_publisher.cache_clear()
    cached_limits.cache_clear()
    with ServerThread(create_app(settings)) as running:
        yield running
    get_publisher.cache_clear()


def readings(device: str, end: float, span_s: float, step_s: float) -> list[list[Any]]:
    n = int(span_s / step_s)
    return [[device, end - (n - k) * step_s, 230.0 + (k % 7) * 0.5, 4.0, 35.0 + (k % 5) * 0.2, None] for k in range(n)]


def chart(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            "(() => { const c = document.getElementById('device-chart');"
            " const v = c.data.find(t => t.name === 'voltage');"
            " return {points: v.y.filter(y => y !== null).length, range: c.layout.xaxis.range}; })()"
        )
    )


def save_token(page: Any) -> None:
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token-input", ADMIN)
    page.click("#token-save")


def test_a_device_with_three_minutes_of_data_opens_on_a_readable_line(browser: Any, db, server) -> None:
    now = time.time()
    with db.transaction():
        write_readings(db, readings("new-3min", now, 180.0, 2.0), [])  # just connected
        write_readings(db, readings("new-2h", now, 7200.0, 10.0), [])
    with open_page(browser, server.url + "/#/device/new-3min") as (page, console):
        page.wait_for_selector("#device-chart .main-svg")
        expect(page.locator("#device-chart-note")).to_contain_text("90 readings, each drawn")
        drawn = chart(page)
        assert drawn["points"] == 90
        start, end = (time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) for t in drawn["range"])
        assert end - start < 5 * 60  # the chart spans the device's data, not an empty day
        assert page.input_value("#device-range") == "auto"

        page.goto(server.url + "/#/device/new-2h")
        expect(page.locator("#device-chart-note")).to_contain_text(re.compile(r"720 readings in 12\d buckets of 1m"))
        assert chart(page)["points"] >= 119
        page.select_option("#device-range", "24h")  # the fixed ranges are still there
        expect(page.locator("#device-chart-note")).to_contain_text("buckets of 5m")
        assert console.errors == []


def test_one_is_singular(browser: Any, db, server) -> None:
    with db.transaction():
        write_readings(db, readings("lonely", time.time(), 2.0, 2.0), [])
    with open_page(browser, server.url + "/#/device/lonely") as (page, console):
        expect(page.locator("#device-chart-note")).to_contain_text("1 reading, each drawn")
        page.select_option("#device-range", "1h")
        expect(page.locator("#device-chart-note")).to_contain_text("1 reading in 1 bucket of 1m")
        page.goto(server.url + "/#/fleet")
        expect(page.locator("#fleet-count")).to_have_text("1 of 1 device")
        assert console.errors == []


def test_retrain_starts_once_the_token_is_saved(browser: Any, db, server) -> None:
    with open_page(browser, server.url + "/#/models") as (page, console):
        page.click("#retrain-button")
        page.wait_for_selector("#token-dialog[open]")
        page.click("#token-cancel")  # changed their mind: nothing happens
        page.wait_for_timeout(500)
        assert not [url for url in console.requests if url.endswith("/admin/retrain")]

        page.click("#retrain-button")
        save_token(page)
        expect(page.locator("#retrain-status")).to_contain_text(re.compile(r"^retrain [0-9a-f]{8}"))
        assert len([url for url in console.requests if url.endswith("/admin/retrain")]) == 1
        assert console.errors == []


def test_resolved_alerts_leave_the_open_list_live(browser: Any, db, server) -> None:
    now = time.time()
    store_batch([["hot-1", now - 2, 262.0, 4.0, 35.0, None], ["hot-2", now - 1, 263.0, 4.0, 35.0, None]])
    ids = {device: alert_id for alert_id, device in db.execute("SELECT id, device_id FROM alerts")}
    assert set(ids) == {"hot-1", "hot-2"}
    with open_page(browser, server.url + "/#/alerts") as (page, console):
        items = page.locator("#alerts-list li[data-alert]")
        expect(items).to_have_count(2)
        assert page.input_value("#alerts-state") == "active"

        # Resolved here (the token asked for on the way, the resolve done once it is saved).
        page.locator(f'#alerts-list li[data-alert="{ids["hot-1"]}"] button.resolve').click()
        save_token(page)
        expect(items).to_have_count(1)
        assert db.execute("SELECT state FROM alerts WHERE id = %s", (ids["hot-1"],)).fetchone() == ("resolved",)

        # Resolved by someone else: the event arrives over the live stream and the alert leaves.
        page.wait_for_selector('#live-state[data-state="live"]')
        response = httpx.post(f"{server.url}/alerts/{ids['hot-2']}/resolve", headers=bearer(ADMIN), timeout=30)
        assert response.status_code == 200
        get_publisher().drain()
        expect(items).to_have_count(0)
        expect(page.locator("#alerts-list li.empty")).to_have_text("No alerts.")

        page.select_option("#alerts-state", "resolved")
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text(re.compile(r"· 1 reading(?!s)"))
        assert console.errors == []
