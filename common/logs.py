"""Request ids on log lines, and log lines as JSON for log collectors.

An API request's id lives in a context variable: asyncio copies the context into every task a request starts
(the stream's start task, background closes), and `sync_to_async` into its threads, so a log line written
anywhere on the request's behalf carries the id the client got in `X-Request-Id`. Lines outside a request
carry "-".
"""

from __future__ import annotations

import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

from common.ids import unique_hex

NO_REQUEST = "-"
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)
# A client's own id goes verbatim into headers and log lines: nothing that could split or forge either.
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    return f"req_{unique_hex()}"


def configure(config: dict) -> None:
    """Django's `LOGGING_CONFIG`: the dict config, and Python's warnings as log lines (a bare warning's text would
    break a JSON log)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


def current_request_id() -> str:
    """The id of the request this code runs for (a stream's error event names the id of its reply), else a new one."""
    request_id = REQUEST_ID.get()
    return new_request_id() if request_id == NO_REQUEST else request_id


def bind_request_id(sent: str | None) -> str:
    """The id of the request starting in this task: the client's own when sane, else a new one."""
    request_id = sent if sent and SANE_ID.fullmatch(sent) else new_request_id()
    REQUEST_ID.set(request_id)
    return request_id


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` unless the line was logged with its own (`extra`); set on the handler, so
    records of every logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, request_id, exc_info if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", NO_REQUEST),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line).decode()
