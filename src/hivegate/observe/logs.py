"""Logging set-up: human text or JSON lines, each record carrying the request id of the exchange it belongs to."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from hivegate.observe.exchange import current_request_id

__all__ = ["configure_logging", "serving_line"]


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


class _JSON(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


class _Server(logging.Filter):
    """uvicorn's own lines are the gateway's (`hivegate.server`); its start-up chatter ("Started server process",
    "Waiting for application startup") is for `--log-level debug` only."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self._debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = "hivegate.server"
        return record.levelno >= logging.WARNING or self._debug


def serving_line(fmt: str, message: str, **fields: Any) -> str:
    """The start-up line a command prints on standard output once it serves: `message` as text, or for `json` one
    JSON line with `message` as `msg` and `fields` beside it (so every line the gateway writes is JSON)."""
    if fmt != "json":
        return message
    line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "INFO", "logger": "hivegate",
            "msg": message, **fields}  # fmt: skip
    return orjson.dumps(line).decode()


def configure_logging(level: str, fmt: str = "text", output: str = "stderr") -> None:
    """Root logging to `output` (`stderr` or `stdout`) at `level` in `fmt` (`text` or `json`); replaces earlier
    handlers."""
    handler = logging.StreamHandler(sys.stdout if output == "stdout" else sys.stderr)
    handler.addFilter(_RequestId())
    if fmt == "json":
        handler.setFormatter(_JSON())
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    server = logging.getLogger("uvicorn.error")
    for old_filter in list(server.filters):
        server.removeFilter(old_filter)
    server.addFilter(_Server(level.lower() == "debug"))
