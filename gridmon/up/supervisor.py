"""A small foreground supervisor: start gridmon's processes, stop them all on Ctrl-C.

Children get their own process group, so a Ctrl-C in the terminal reaches only this process,
which then stops the children step by step, in dependency order: each `StopStep` of the stop
plan runs its `before` hook (say, waiting for a queue to drain), signals its children (SIGTERM,
then SIGKILL after a grace period) and waits for them before the next step begins. Children the
plan does not name stop last, together. Nothing is orphaned; if a child dies on its own,
everything is stopped and the exit code says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    stopped_logged: bool = False


@dataclass(frozen=True)
class StopStep:
    """Children stopped together, after `before` (if any) has returned; `after` runs once they
    have exited."""

    names: tuple[str, ...]
    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None


class Supervisor:
    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        log_dir: Path | None = None,
        grace_s: float = 20.0,
        stop_plan: Sequence[StopStep] = (),
    ):
        self.env = env
        self.cwd = cwd
        self.log_dir = log_dir
        self.grace_s = grace_s
        self.stop_plan = list(stop_plan)
        self.children: list[Child] = []
        self._stopping = False

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, args)
        stdout: Any = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stdout = (self.log_dir / f"{name}.log").open("ab")
        try:
            child.proc = subprocess.Popen(
                args,
                env={**self.env, **(env or {})},
                cwd=self.cwd,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if stdout is not None:
                stdout.close()  # the child has its own copy of the descriptor
        self.children.append(child)
        log.info("started %s (pid %d)", name, child.proc.pid)
        return child

    def _request_stop(self, signum: int, _frame: Any) -> None:
        if not self._stopping:
            log.info("stopping (%s) …", signal.Signals(signum).name)
        self._stopping = True

    def run(
        self,
        status: Callable[[], None] | None = None,
        status_every_s: float = 2.0,
        *,
        watch: Callable[[], str | None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> int:
        """Wait until Ctrl-C/SIGTERM or a child exits; then stop everything. Returns an exit code.

        `watch` names something else that must stay up (an embedded server) when it died;
        `on_stop` runs once when stopping begins (before the children are signalled)."""
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        code = 0
        next_status = 0.0
        while not self._stopping:
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    log.error("%s exited with code %s; stopping everything", child.name, child.proc.returncode)
                    code = 1
                    self._stopping = True
                    break
            dead = watch() if watch is not None and not self._stopping else None
            if dead:
                log.error("embedded %s is no longer running; stopping everything", dead)
                code = 1
                self._stopping = True
            if status is not None and time.monotonic() >= next_status:
                status()
                next_status = time.monotonic() + status_every_s
            time.sleep(0.2)
        if on_stop is not None:
            on_stop()
        self.stop_all()
        return code

    def stop_all(self) -> None:
        """Stop every child: the steps of the stop plan in order, then the others together."""
        planned: set[str] = set()
        for step in self.stop_plan:
            planned.update(step.names)
            group = [c for c in self.children if c.name in step.names]
            if not any(c.proc is not None and c.proc.poll() is None for c in group):
                continue
            _hook(step.before, f"before stopping {', '.join(step.names)}")
            self._stop_group(group)
            _hook(step.after, f"after stopping {', '.join(step.names)}")
        self._stop_group([c for c in reversed(self.children) if c.name not in planned])

    def _stop_group(self, group: list[Child]) -> None:
        """SIGTERM each child of `group`, then wait for all (SIGKILL after the grace period)."""
        for child in group:
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + self.grace_s
        for child in group:
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name, self.grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if child.stopped_logged:
                continue
            child.stopped_logged = True
            if proc.returncode == 0:
                log.info("stopped %s", child.name)
            else:
                log.warning("stopped %s (exit code %s)", child.name, proc.returncode)


def _hook(hook: Callable[[], object] | None, what: str) -> None:
    if hook is None:
        return
    try:
        hook()
    except Exception:  # a failing hook must not keep the rest running
        log.exception("%s failed", what)
