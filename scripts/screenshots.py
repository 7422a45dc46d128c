"""README screenshots from a real `make run`: `make screenshots` (or `python scripts/screenshots.py`).

If gridmon answers on its configured API address, the pictures are taken of that run; otherwise
this script starts `gridmon up` itself — the command `make run` runs, in this checkout, with its
settings and data directory — waits until the demo shows everything (every device profiled and
with a maintenance outlook, a model version, the degrading transformer dated), takes the
pictures and stops it again with Ctrl-C. Chromium is Debian's (`apt-get install chromium`), driven
headless by Playwright; the pictures go to `docs/screenshots/` (or `--out`).

Options: `--url http://host:port` to photograph another instance, `--out DIR`, `--timeout S`.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gridmon.services.chromium import CHROMIUM_ARGS, NOT_FOUND, find_chromium

REPO_ROOT = Path(__file__).resolve().parent.parent
VIEWPORT: Any = {"width": 1440, "height": 900}


def get(url: str, token: str | None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def demo_ready(url: str, token: str | None) -> str | None:
    """The device to show (the riskiest, dated) once the demo shows everything, else None."""
    try:
        devices = get(url + "/devices?limit=500", token)["items"]
        models = get(url + "/models?limit=1", token)
    except (OSError, urllib.error.URLError, KeyError, ValueError):
        return None
    if not devices or not models or any(d["risk_level"] is None or not d["profile"]["kind"] for d in devices):
        return None
    riskiest = max(devices, key=lambda d: d["risk_score"] or 0.0)
    try:
        prediction = get(url + f"/devices/{riskiest['device_id']}/prediction", token)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return str(riskiest["device_id"]) if prediction.get("predicted_failure_date") else None


def chromium() -> str:
    return find_chromium() or sys.exit(NOT_FOUND)


def shoot(url: str, device: str, out: Path) -> list[Path]:
    """Fleet (riskiest first), the device, the alerts and the models, as PNG files in `out`."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(60_000)

        def save(name: str, *, full_page: bool = False) -> None:
            page.evaluate("document.getElementById('toasts').replaceChildren()")  # passing notes cover the view
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=full_page)
            taken.append(path)

        page.goto(url + "/#/fleet")
        page.wait_for_selector(f'#fleet-table tbody tr[data-device="{device}"]')
        page.wait_for_selector('#live-state[data-state="live"]')
        page.click('th[data-sort="risk"]')
        page.wait_for_timeout(1500)  # the summary strip's first figures
        save("fleet")
        page.goto(url + f"/#/device/{device}")
        page.wait_for_selector("#device-chart .main-svg")
        page.wait_for_selector("#device-prediction .risk-line")
        page.select_option("#device-range", "7d")  # the whole history: the warming trend shows
        page.locator("#device-chart-note", has_text="of 1h").wait_for()
        page.wait_for_timeout(1000)
        save("device", full_page=True)
        page.goto(url + "/#/alerts")
        page.select_option("#alerts-state", "")
        page.wait_for_selector("#alerts-list li[data-alert], #alerts-list li.empty")
        save("alerts")
        page.goto(url + "/#/models")
        page.wait_for_selector("#models-table tbody tr[data-model]")
        save("models")
        browser.close()
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--url", help="a running gridmon's API (default: the configured one)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the demo")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT))
    from gridmon.config import get_settings

    settings = get_settings()
    url = args.url or f"http://{settings.api_host}:{settings.api_port}"
    token = settings.read_token or settings.admin_token
    up: subprocess.Popen[bytes] | None = None
    if not answers(url):
        if args.url:
            sys.exit(f"nothing answers at {url}")
        print(f"starting gridmon up (as make run does); its console: {settings.data_dir / 'logs' / 'up.console'}")
        console = settings.data_dir / "logs" / "up.console"
        console.parent.mkdir(parents=True, exist_ok=True)
        with console.open("wb") as handle:
            up = subprocess.Popen(
                [sys.executable, "-m", "gridmon.cli.main", "up"], stdout=handle, stderr=subprocess.STDOUT
            )
    try:
        deadline = time.monotonic() + args.timeout
        device = None
        while device is None:
            if up is not None and up.poll() is not None:
                sys.exit(f"gridmon up exited with {up.returncode}; see {settings.data_dir / 'logs'}")
            if time.monotonic() > deadline:
                sys.exit(f"the demo did not show a model and dated outlook within {args.timeout:.0f} s")
            if answers(url):
                get_settings.cache_clear()  # `up` may have written the tokens into .env just now
                token = get_settings().read_token or get_settings().admin_token
                device = demo_ready(url, token)
            if device is None:
                time.sleep(5)
        for path in shoot(url, device, args.out):
            print(f"wrote {path}")
    finally:
        if up is not None:
            up.send_signal(signal.SIGINT)
            up.wait(180)
    return 0


if __name__ == "__main__":
    sys.exit(main())
