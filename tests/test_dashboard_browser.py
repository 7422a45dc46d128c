"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against the
real pipeline (private Mosquitto, Redis, bridge and Celery workers) and the API served by uvicorn.

Readings arrive over MQTT while the page is open; a 260 V reading must appear as an alert without
a reload, be acknowledged from the page, and nothing may be logged to the browser console.
Screenshots land in `artifacts/dashboard/` (README's pictures come from a real run instead:
`make screenshots`, `scripts/screenshots.py`).

Chromium comes from Debian (`apt-get install -y chromium`; `.ci/run` installs it). Without it
these tests fail, naming the fix: a browser test that skips itself would prove nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
from playwright.sync_api import expect, sync_playwright

from gridmon.bench.stack import IngestStack
from gridmon.config import REPO_ROOT, Settings
from gridmon.services import procs
from gridmon.services.chromium import CHROMIUM_ARGS, NOT_FOUND, find_chromium
from gridmon.services.mosquitto import free_port
from gridmon.simulator.dataset import degradation_scenario, healthy_scenario
from gridmon.simulator.load import make_load_payloads, publish_readings
from gridmon.simulator.payload import topic_for
from gridmon.storage.readings import write_readings
from tests.api_support import ADMIN, bearer
from tests.conftest import TEST_DB_URL, TEST_REDIS_URL
from tests.pipeline_helpers import running_stack
from tests.test_dashboard_live import ServerThread

pytestmark = pytest.mark.slow
expect.set_options(timeout=30_000)

ARTIFACTS = REPO_ROOT / "artifacts" / "dashboard"
VIEWPORT = {"width": 1440, "height": 900}
DEVICES = 24
HOT = "sensor_3"  # a warming transformer; it gets the 260 V reading
HISTORY_S = 36 * 3600.0


def chromium_path() -> str:
    path = find_chromium()
    if not path:
        pytest.fail(NOT_FOUND, pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """Everything the page reports as an error (console errors and uncaught exceptions), and the
    URL of every request it made, from the first."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location.get('url', '?')}")


@contextmanager
def open_page(browser: Any, url: str) -> Iterator[tuple[Any, Console]]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = Console(page)
    try:
        page.goto(url)
        yield page, console
    finally:
        context.close()


def save_screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("document.getElementById('toasts').replaceChildren()")  # passing notes would cover the view
    page.screenshot(path=str(path), full_page=full_page)
    return path


# --- the stack -------------------------------------------------------------------------------


@contextmanager
def api_process(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`uvicorn gridmon.api:create_app` as a child with `env`; yields its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "gridmon.api:create_app", "--factory", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "2"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return proc.poll() is not None  # stop waiting for a dead process

    try:
        if not procs.wait_until(healthy, timeout=90, interval=0.2) or proc.poll() is not None:
            raise RuntimeError(f"API did not start:\n{log_path.read_text()[-3000:]}")
        yield url
    finally:
        procs.stop(proc, timeout=15)


def seed_history(conn: psycopg.Connection, end: float) -> None:
    """36 h of readings every 2 minutes for every device, from the simulator's scenarios, stored
    through the ingest write path. HOT warms up by 8 °C a day (its failure is dated: within four
    times the 36 h of evidence, see docs/maintenance.md)."""
    start = end - HISTORY_S
    for k in range(DEVICES):
        device = f"sensor_{k}"
        if device == HOT:
            frame, _ = degradation_scenario(
                device_id=device, start=start, interval_s=120.0, history_s=HISTORY_S, slope_c_per_day=8.0, seed=k
            )
        else:
            frame = healthy_scenario(
                device_id=device, start=start, interval_s=120.0, history_s=HISTORY_S, seed=k, base_c=28.0 + k % 9
            )
        columns = frame[["ts", "voltage", "current", "temperature"]].itertuples(index=False)
        rows = [(device, float(ts), float(v), float(i), float(t), None) for ts, v, i, t in columns]
        with conn.transaction():
            write_readings(conn, rows, [])


def set_profiles(api_url: str) -> None:
    kinds = ("transformer", "feeder", "meter")
    with httpx.Client(base_url=api_url, headers=bearer(ADMIN), timeout=30) as client:
        for k in range(DEVICES):
            profile: dict[str, Any] = {"kind": kinds[k % 3], "location": f"Substation {1 + k // 6} · bay {1 + k % 6}"}
            if k == 3:
                profile.update(nominal_voltage=230.0, rated_current=10.0, temperature_limit=65.0)
            response = client.put(f"/devices/sensor_{k}", json=profile)
            assert response.status_code == 200, response.text


def reading(device: str, voltage: float) -> bytes:
    return orjson.dumps(
        {"device_id": device, "timestamp": time.time(), "voltage": voltage, "current": 4.0, "temperature": 41.0}
    )


@pytest.fixture()
def live_stack(db: psycopg.Connection, tmp_path: Path) -> Iterator[tuple[IngestStack, str]]:
    """The running pipeline with a day of history, profiles and predictions, an ML worker for
    retrains, the API on the stack's Redis, and healthy readings flowing over MQTT."""
    with running_stack(TEST_DB_URL, workers=1) as stack:
        ml_worker = procs.start_worker(
            stack.env(), tmp_path / "ml-worker.log", queues="ml", concurrency=1, hostname="dash-ml@%h"
        )
        stop = threading.Event()
        publisher: threading.Thread | None = None
        api_env = stack.env(GRIDMON_ADMIN_TOKEN=ADMIN, GRIDMON_READ_TOKEN="", GRIDMON_LOG_LEVEL="WARNING")
        try:
            seed_history(db, time.time() - 60.0)
            with api_process(api_env, tmp_path / "api.log") as api_url:
                set_profiles(api_url)
                from gridmon.jobs.predict import run_predictions

                client = redis.Redis.from_url(stack.redis.url)
                assert run_predictions(client=client).devices == DEVICES
                client.close()
                port = stack.mosquitto.port
                load = make_load_payloads(None, devices=DEVICES, seed=11)
                publisher = threading.Thread(
                    target=publish_readings,
                    args=(load,),
                    kwargs={
                        "host": "127.0.0.1",
                        "port": port,
                        "rate": 2.0 * DEVICES,
                        "client_id": "dash-load",
                        "stop": stop,
                    },
                    daemon=True,
                )
                publisher.start()

                def all_reporting() -> bool:
                    row = db.execute(
                        "SELECT count(DISTINCT device_id) FROM sensor_readings WHERE ts > now() - interval '10 s'"
                    ).fetchone()
                    return bool(row and row[0] == DEVICES)

                assert procs.wait_until(all_reporting, timeout=60, interval=0.5), "live readings are not arriving"
                yield stack, api_url
        finally:
            stop.set()
            if publisher is not None:
                publisher.join(timeout=30)
            procs.stop(ml_worker)


# --- the tests -------------------------------------------------------------------------------


def test_live_dashboard_over_the_real_pipeline(browser: Any, live_stack: tuple[IngestStack, str], db) -> None:
    stack, api_url = live_stack
    with open_page(browser, api_url + "/#/fleet") as (page, console):
        # Fleet: every device, the summary strip fed by the live stream.
        page.wait_for_selector(f'#fleet-table tbody tr[data-device="{HOT}"]')
        assert page.text_content("#fleet-count") == f"{DEVICES} of {DEVICES} devices"
        expect(page.locator("#sum-rate")).not_to_have_text(re.compile(r"^(–|0)$"))
        assert page.text_content("#sum-devices") == str(DEVICES)
        page.wait_for_selector('#live-state[data-state="live"]')
        page.evaluate("window.__sameDocument = 'yes'")

        # Alerts: a 260 V reading over MQTT appears live.
        page.click('nav a[data-view="alerts"]')
        page.wait_for_selector("#alerts-list li.empty")
        stats = publish_readings(
            [(topic_for(HOT), reading(HOT, 260.0))], host="127.0.0.1", port=stack.mosquitto.port, client_id="dash-260"
        )
        assert stats.count == 1
        item = page.locator("#alerts-list li[data-alert]", has_text=HOT)
        item.wait_for()
        assert page.evaluate("window.__sameDocument") == "yes", "the page reloaded"
        assert item.get_attribute("data-state") == "open"
        assert "sev-border-high" in (item.get_attribute("class") or "")
        assert "260" in item.text_content()
        expect(page.locator("#sum-high")).to_have_text("1")
        alert_id = int(item.get_attribute("data-alert") or 0)

        # Acknowledge from the page, with the admin token entered once.
        page.click("#token-button")
        page.fill("#token-input", ADMIN)
        page.click("#token-save")
        expect(page.locator("#token-button")).to_have_text("Token ✓")  # the session cookie is set
        item = page.locator(f'#alerts-list li[data-alert="{alert_id}"]')
        # A live event may re-render the list while Playwright fills the field: the page keeps a
        # note typed into the live node, but a fill that landed on the node just replaced is lost.
        note = item.locator("input.note")
        for _ in range(5):
            note.fill("crew dispatched")
            if note.input_value() == "crew dispatched":
                break
        item.locator("button.ack").click()
        page.wait_for_selector(f'#alerts-list li[data-alert="{alert_id}"][data-state="acknowledged"]')
        row = db.execute("SELECT device_id, metric, state, ack_note FROM alerts WHERE id = %s", (alert_id,)).fetchone()
        assert row == (HOT, "voltage", "acknowledged", "crew dispatched")
        expect(page.locator("#sum-high")).to_have_text("0")
        save_screenshot(page, "alerts")

        # Fleet again, riskiest first: the warming transformer leads, its alert acknowledged.
        page.click('nav a[data-view="fleet"]')
        page.click('th[data-sort="risk"]')
        first = page.locator("#fleet-table tbody tr").first
        expect(first).to_have_attribute("data-device", HOT)
        expect(first).to_contain_text("1 ack")
        save_screenshot(page, "fleet")

        # Device view: chart with bands and the episode, the prediction, the profile.
        page.click(f'#fleet-table a[href="#/device/{HOT}"]')
        page.wait_for_selector("#device-chart .main-svg")
        expect(page.locator("#device-chart-note")).to_contain_text("readings in")
        chart = page.evaluate(
            "(() => { const c = document.getElementById('device-chart');"
            " return {names: c.data.map(t => t.name), shapes: c.layout.shapes.length,"
            " anomaly: c.data.filter(t => t.name === 'anomaly').map(t => t.y).flat()}; })()"
        )
        assert {"voltage", "current", "temperature"} <= set(chart["names"])
        assert chart["anomaly"] == [260.0]
        assert chart["shapes"] >= 3 * 3 + 1  # a safe band and its two edges per metric, and the episode
        assert "risk" in page.text_content("#device-prediction")
        assert "Risk factors" in page.text_content("#device-prediction")
        assert "Substation 1 · bay 4" in page.text_content("#device-profile")
        assert "207 – 253 V (profile)" in page.text_content("#device-profile")
        save_screenshot(page, "device", full_page=True)

        # Models: a retrain from the page, followed to the end.
        page.click('nav a[data-view="models"]')
        page.click("#retrain-button")
        expect(page.locator("#retrain-status")).to_contain_text(re.compile("SUCCESS|FAILURE"), timeout=180_000)
        status = page.text_content("#retrain-status") or ""
        assert "SUCCESS" in status and "model v1" in status, status
        page.wait_for_selector('#models-table tbody tr[data-model="1"]')
        assert "active" in page.text_content('#models-table tbody tr[data-model="1"]')
        save_screenshot(page, "models")

        # The session survives a reload; the token itself is nowhere a script (or a URL) can reach.
        page.reload()
        page.wait_for_selector('#live-state[data-state="live"]')
        expect(page.locator("#token-button")).to_have_text("Token ✓")
        readable = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
        assert ADMIN not in readable
        [cookie] = [c for c in page.context.cookies() if c["name"] == "gridmon_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ADMIN not in cookie["value"]
        assert console.errors == []


def test_fleet_of_a_thousand_devices_pages_filters_and_sorts(browser: Any, db: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    rows = [
        (
            f"fleet-{k:04d}",
            (now - timedelta(hours=2 if k % 10 == 0 else 0, seconds=k % 60)).timestamp(),
            230.0,
            4.0,
            40.0,
            None,
        )
        for k in range(1000)
    ]
    with db.transaction():
        write_readings(db, rows, [])
    settings = Settings.model_validate({"admin_token": ADMIN, "read_token": None, "redis_url": TEST_REDIS_URL})
    from gridmon.api import create_app

    with ServerThread(create_app(settings)) as server, open_page(browser, server.url + "/#/fleet") as (page, console):
        expect(page.locator("#fleet-count")).to_have_text(re.compile("^1000 of 1000 devices"))
        assert page.locator("#fleet-table tbody tr").count() == 50
        assert page.text_content("#fleet-page") == "page 1 of 20"
        listed = [url for url in console.requests if "/devices?" in url]
        assert len(listed) == 2 and all("limit=500" in url for url in listed)  # bounded pages

        page.fill("#fleet-filter", "fleet-0421")
        expect(page.locator("#fleet-count")).to_have_text(re.compile("^1 of 1000 devices"))
        assert page.locator("#fleet-table tbody tr").count() == 1
        page.fill("#fleet-filter", "")
        page.select_option("#fleet-status", "stale")
        expect(page.locator("#fleet-count")).to_have_text(re.compile("^100 of 1000 devices"))
        page.select_option("#fleet-status", "")
        page.click('th[data-sort="device_id"]')  # second click on the current key: descending
        expect(page.locator("#fleet-table tbody tr").first).to_have_attribute("data-device", "fleet-0999")
        page.click("#fleet-next")
        assert page.text_content("#fleet-page") == "page 2 of 20"
        assert page.locator("#fleet-table tbody tr").first.get_attribute("data-device") == "fleet-0949"
        assert console.errors == []


def test_device_chart_draws_the_detectors_expected_band(browser: Any, db: psycopg.Connection) -> None:
    """After a scan has scored a device, its chart draws what the detector expects (a dashed band
    per metric from `/devices/{id}/band`) around the readings, and the note says so."""
    from gridmon.jobs.scan import run_scan

    device = "band-device"
    end = time.time() - 30.0
    frame = healthy_scenario(device_id=device, start=end - 2 * 86400, interval_s=120.0, history_s=2 * 86400, seed=5)
    columns = frame[["ts", "voltage", "current", "temperature"]].itertuples(index=False)
    rows = [(device, float(ts), float(v), float(i), float(t), None) for ts, v, i, t in columns]
    with db.transaction():
        write_readings(db, rows, [])
    assert procs.wait_until(lambda: run_scan(drain=False).readings > 0, timeout=30, interval=0.5)
    temperatures = [r[4] for r in rows[-720:]]
    settings = Settings.model_validate({"admin_token": ADMIN, "read_token": None, "redis_url": TEST_REDIS_URL})
    from gridmon.api import create_app

    with ServerThread(create_app(settings)) as server, open_page(browser, server.url + f"/#/device/{device}") as (
        page,
        console,
    ):
        page.wait_for_selector("#device-chart .main-svg")
        expect(page.locator("#device-chart-note")).to_contain_text("what the detector expects")
        chart = page.evaluate(
            "(() => { const c = document.getElementById('device-chart');"
            " return c.data.filter(t => t.legendgroup === 'expected' && t.yaxis === 'y3')"
            ".map(t => t.y.filter(v => v !== null)); })()"
        )
        low, high, expected = chart
        assert len(expected) > 100
        # The expectation sits among the day's temperatures and the band is around it.
        assert min(temperatures) - 5 < sum(expected) / len(expected) < max(temperatures) + 5
        assert all(lo <= hi for lo, hi in zip(low, high, strict=True))
        assert console.errors == []
