"""Logging set-up. Tokens travel in query strings (browsers cannot set WebSocket headers), so
every log line is redacted as a whole, after formatting (a traceback or a library's debug line
can carry a URL too): a token in a log is a key left on a table.

`log_format = "json"` writes one JSON object per line (time, level, logger, message, and the
`worker`, `room` and `request_id` known where the line was logged) for a log collector."""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar

from server.errors import ConfigError

_TOKEN = re.compile(
    r"(token=)[^&\s\"'\\]+|(Bearer\s+)[A-Za-z0-9._~+/=-]+"
    # A JWT anywhere (header and payload are base64url JSON, so both start with eyJ).
    r"|()eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*",
    re.IGNORECASE,
)

WORKER: ContextVar[str | None] = ContextVar("worker", default=None)
ROOM: ContextVar[str | None] = ContextVar("room", default=None)
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
FORMATS = ("text", "json")


def redact(text: str) -> str:
    return _TOKEN.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={value}"
            for name, value in (("room", ROOM.get()), ("request_id", REQUEST_ID.get()))
            if value is not None
        )
        return redact(f"{line} [{context}]" if context else line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, var in (("worker", WORKER), ("room", ROOM), ("request_id", REQUEST_ID)):
            value = var.get()
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        # Redacted field by field: redacting the encoded line could cut an escape in two.
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str = "INFO", log_format: str = "text") -> None:
    if log_format not in FORMATS:
        raise ConfigError(
            f"COCOACH_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}"
        )
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
