"""Where a kakin process's log goes: standard error, as text or as JSON lines, from the
level ``[logging]`` sets (see docs/config.md).

kakin logs through the standard library (``kakin.gateway``, ``kakin.admin``,
``kakin.alerts``, ``kakin.access``); so does uvicorn (``uvicorn.error``). The level applies to
those; other libraries print their warnings and errors only, whatever the level, so
``debug`` shows kakin's own detail rather than every dependency's. Nothing kakin logs
carries a key: virtual keys appear by id, provider keys not at all.

A structured field travels as ``extra={"fields": {...}}``: the JSON format puts each field at
the top level of the line, the text format leaves them out (the message says it all).
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from kakin.config import LoggingSettings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# Loggers the configured level applies to; the rest of the process logs warnings and up.
OWN_LOGGERS = ("kakin", "uvicorn", "uvicorn.error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """``2025-05-01 09:12:03,114 INFO kakin.access: …``, the time in UTC like every time kakin shows."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the record's
    ``fields``, and the exception's traceback as text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(settings: LoggingSettings, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (standard error) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    level = LEVELS[settings.level]
    # Neither format shows the thread, the process or the caller's source line: don't make
    # every record look them up (the logging HOWTO's optimisations; the access log writes
    # one record per request).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
    for name in OWN_LOGGERS:
        own = logging.getLogger(name)
        own.handlers[:] = []  # uvicorn may have installed its own; every line goes through ours
        own.propagate = True
        own.setLevel(level)
