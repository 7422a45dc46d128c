"""Logging: `key=value` lines by default, JSON lines with GRIDMON_LOG_JSON=1, and the short human
console `gridmon up` shows.

Messages are written by the callers (`log.info("batch stored n=%d", n)`); the formatter adds
time, level and logger, and in JSON mode wraps the same fields. Non-ASCII text (°C, …, →) is
written as is, not as `\\u` escapes.

Routine lines stay out of INFO: Celery's per-task lines ("received", "succeeded", beat's
"Sending due task") for the tasks that run many times a minute — ingest batches and the beat
heartbeat — are demoted to DEBUG by `QuietRoutine`, like gridmon's own per-batch lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

_configured = False

ROUTINE_TASKS = frozenset({"workers.ingest.ingest_batch", "workers.system.beat_heartbeat"})
_CELERY_TASK_LOGGERS = frozenset({"celery.app.trace", "celery.worker.strategy", "celery.beat"})
_QUIET_LIBRARIES = ("urllib3", "asyncio", "kombu", "amqp")


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=… logger=… msg="…"` — one greppable line per event."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        message = json.dumps(record.getMessage(), ensure_ascii=False)
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} msg={message}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info), ensure_ascii=False)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`14:07:51  started bridge (pid 4242)` — local time and the message; the level only when it
    is a warning or worse. What a person reads in the terminal of `gridmon up`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        line = f"{stamp}  {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class QuietRoutine(logging.Filter):
    """Celery's INFO lines about `ROUTINE_TASKS` become DEBUG lines (dropped below DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.name not in _CELERY_TASK_LOGGERS:
            return True
        args = record.args
        names = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else ()
        if not ROUTINE_TASKS.intersection(str(name) for name in names):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


CONSOLE_LOGGERS = ("gridmon.up", "gridmon.services")


class ConsoleInfo(logging.Filter):
    """INFO lines of `gridmon up` itself and of the embedded servers, and anyone's warnings; the
    rest (libraries, the jobs `up` runs in-process) goes to the detailed log only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(CONSOLE_LOGGERS)


def _handler(handler: logging.Handler, formatter: logging.Formatter, *filters: logging.Filter) -> logging.Handler:
    handler.setFormatter(formatter)
    for item in (QuietRoutine(), *filters):
        handler.addFilter(item)
    return handler


def configure_logging(level: str | None = None, json_lines: bool | None = None, force: bool = False) -> None:
    """Install the gridmon formatter on the root logger (once per process unless forced)."""
    global _configured
    if _configured and not force:
        return
    from gridmon.config import get_settings

    settings = get_settings()
    use_json = settings.log_json if json_lines is None else json_lines
    handler = _handler(logging.StreamHandler(sys.stderr), JsonFormatter() if use_json else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.log_level).upper())
    for noisy in _QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def configure_console(log_file: Path) -> None:
    """`gridmon up`'s logging: the human console on stderr (`up`'s own INFO, every warning) and the
    full key=value log in `log_file` (what `configure_logging` would print)."""
    from gridmon.config import get_settings

    configure_logging()
    settings = get_settings()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    detailed = _handler(
        logging.FileHandler(log_file, encoding="utf-8"), JsonFormatter() if settings.log_json else KeyValueFormatter()
    )
    console = _handler(logging.StreamHandler(sys.stderr), ConsoleFormatter(), ConsoleInfo())
    console.setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))
    logging.getLogger().handlers[:] = [console, detailed]
