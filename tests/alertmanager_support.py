"""A private Prometheus Alertmanager (the Debian binary) and a webhook receiver for the tests.

The Alertmanager configuration is the project's `deploy/alertmanager/alertmanager.yml` — its
routing tree and inhibition rules — with every receiver pointed at the test's webhook and the
timings shortened, so the tests exercise the shipped routing, not a stand-in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from gridmon.config import REPO_ROOT
from gridmon.services.mosquitto import ServerProcess, free_port

DEPLOY_CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class Webhook:
    """An HTTP server on 127.0.0.1 that records every Alertmanager notification it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._lock:
                    hook.received.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def am_config(hook: Webhook, *, resolve_timeout: str = "5m") -> dict[str, Any]:
    """The deploy configuration with every receiver replaced by the webhook (path = receiver name)
    and group timings of a second."""
    config = yaml.safe_load(DEPLOY_CONFIG.read_text())
    config["global"] = {"resolve_timeout": resolve_timeout}
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": hook.url("/" + r["name"]), "send_resolved": True}]}
        for r in config["receivers"]
    ]
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for key, value in (("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1h")):
            if key in route or route is config["route"]:
                route[key] = value
        routes.extend(route.get("routes", []))
    return config


class AlertmanagerProcess(ServerProcess):
    """`prometheus-alertmanager` on its own port and data directory (clustering off)."""

    def __init__(self, data_dir: Path, config: dict[str, Any], port: int | None = None):
        super().__init__(data_dir, port)
        self.config = config

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        exe = binary()
        if exe is None:
            raise RuntimeError("alertmanager binary not found (install Debian package 'prometheus-alertmanager')")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "alertmanager.yml"
        conf.write_text(yaml.safe_dump(self.config))
        log = (self.data_dir / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={conf}",
                f"--storage.path={self.data_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"alertmanager did not start; see {self.data_dir}/alertmanager.log")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (with its query filters)."""
        response = httpx.get(self.url + "/api/v2/alerts", params=filters, timeout=5)
        response.raise_for_status()
        return list(response.json())

    def silence(self, matchers: dict[str, str], minutes: float = 60) -> str:
        """Create a silence through the API; returns its id."""
        now = time.time()
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1)),
            "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + minutes * 60)),
            "createdBy": "gridmon tests",
            "comment": "maintenance window",
        }
        response = httpx.post(self.url + "/api/v2/silences", json=body, timeout=5)
        response.raise_for_status()
        return str(response.json()["silenceID"])


__all__ = ["AlertmanagerProcess", "Webhook", "am_config", "binary", "free_port"]
