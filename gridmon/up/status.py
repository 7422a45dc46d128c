"""What `gridmon up` shows while it runs: readings/s, rows stored, open alerts, workers answering.

On a terminal it is one live line at the bottom (rich), with the log lines scrolling above it;
otherwise (a pipe, a log file, CI) the same line is logged every `log_every_s` seconds.
Sampling runs in its own thread, so a slow database or a worker ping never delays the
supervisor's reaction to Ctrl-C or to a child that died.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from gridmon.storage.alerts import count_unresolved_total
from gridmon.storage.db import table_exists
from gridmon.storage.readings import count_readings
from gridmon.up.drain import plural

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    readings_per_s: float
    rows: int
    open_alerts: int
    workers: int | None  # None: the ping itself failed

    def line(self) -> str:
        workers = "? workers" if self.workers is None else plural(self.workers, "worker")
        return (
            f"{self.readings_per_s:,.0f} readings/s · {plural(self.rows, 'row')} stored · "
            f"{plural(self.open_alerts, 'open alert')} · {workers}"
        )


class WorkerPing:
    """Celery workers answering a broadcast ping, on the broker `up` gave its children."""

    def __init__(self, timeout: float = 1.0):
        self.timeout = timeout
        self._app: Any = None

    def __call__(self) -> int | None:
        try:
            if self._app is None:
                from gridmon.celery import make_app

                self._app = make_app()  # after `up` set the environment: the right broker
            return len(self._app.control.ping(timeout=self.timeout) or [])
        except Exception as exc:  # a broker hiccup must not end the status thread
            log.debug("worker ping failed error=%s", exc)
            return None


class StatusProbe:
    """Reads the figures; readings/s is the row-count change since the previous sample."""

    def __init__(self, database_url: str, workers: Callable[[], int | None] | None = None):
        self.database_url = database_url
        self.workers = workers or WorkerPing()
        self._last: tuple[float, int] | None = None

    def sample(self) -> Snapshot | None:
        try:
            with psycopg.connect(self.database_url, connect_timeout=2) as conn:
                rows = count_readings(conn)
                alerts = count_unresolved_total(conn) if table_exists(conn, "alerts") else 0
        except psycopg.Error as exc:
            log.warning("status unavailable error=%s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            return None
        now = time.monotonic()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = max(rows - self._last[1], 0) / (now - self._last[0])
        self._last = (now, rows)
        return Snapshot(rate, rows, alerts, self.workers())


class StatusReporter:
    """Samples every `every_s` in a thread; shows a live line on a TTY, logs a line otherwise."""

    def __init__(
        self,
        probe: StatusProbe,
        *,
        every_s: float = 5.0,
        log_every_s: float = 30.0,
        live: bool | None = None,
        title: str = "gridmon",
    ):
        self.probe = probe
        self.live_mode = sys.stdout.isatty() if live is None else live
        # A live line is cheap to refresh; a logged one scrolls the terminal, so it comes less often.
        self.every_s = every_s if self.live_mode else max(every_s, log_every_s)
        self.title = title
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> StatusReporter:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.live_mode:
            self._start_live()
        self._thread = threading.Thread(target=self._loop, name="gridmon-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and remove the live line (idempotent; the supervisor calls it on Ctrl-C)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._live is not None:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()
            self._live.stop()
            self._live = None

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._live = Live(Text(f"{self.title} ▸ starting…"), console=Console(), refresh_per_second=2, transient=True)
        real_stderr = sys.stderr
        self._live.start()
        # Log handlers hold the stream they were created with; point them at rich's proxy so log
        # lines are printed above the live line instead of through it.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is real_stderr:
                self._swapped.append((handler, handler.setStream(sys.stderr)))

    def _loop(self) -> None:
        while not self._stop.is_set():
            snapshot = self.probe.sample()
            if snapshot is not None and not self._stop.is_set():
                self.show(snapshot)
            self._stop.wait(self.every_s)

    def show(self, snapshot: Snapshot) -> None:
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(f"{self.title} ▸ {snapshot.line()}  (Ctrl-C stops)", style="bold"))
        else:
            log.info("status: %s", snapshot.line())
