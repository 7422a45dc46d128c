"""Structured logging: `key=value` lines by default, JSON lines with GRIDMON_LOG_JSON=1.

Messages are written as `event key=value …` by the callers (`log.info("batch stored n=%d", n)`);
the formatter adds time, level and logger, and in JSON mode wraps the same fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_configured = False


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=… logger=… msg="…"` — one greppable line per event."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} msg={json.dumps(record.getMessage())}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
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
        return json.dumps(doc)


def configure_logging(level: str | None = None, json_lines: bool | None = None, force: bool = False) -> None:
    """Install the gridmon formatter on the root logger (once per process unless forced)."""
    global _configured
    if _configured and not force:
        return
    from gridmon.config import get_settings

    settings = get_settings()
    handler = logging.StreamHandler(sys.stderr)
    use_json = settings.log_json if json_lines is None else json_lines
    handler.setFormatter(JsonFormatter() if use_json else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.log_level).upper())
    for noisy in ("urllib3", "asyncio", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True
