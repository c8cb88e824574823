"""JSON-RPC 2.0 helpers for MCP messages: decoding, classification and error objects.

Messages stay plain dicts (decoded with orjson) on the hot path; typed models would cost more than the proxy itself.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

__all__ = [
    "BACKEND_UNAVAILABLE",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SESSION_NOT_FOUND",
    "Message",
    "RequestId",
    "decode",
    "encode",
    "error_response",
    "is_notification",
    "is_request",
    "is_response",
    "valid_message",
]

Message = dict[str, Any]
RequestId = str | int

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
BACKEND_UNAVAILABLE: Final = -32000  # "server error" range: the backend is down or did not answer in time
SESSION_NOT_FOUND: Final = -32001


def decode(body: bytes) -> Any:
    """Decode a JSON body; raises `ValueError` (orjson.JSONDecodeError) on malformed input."""
    return orjson.loads(body)


def encode(message: Any) -> bytes:
    return orjson.dumps(message)


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    return "method" not in message and "id" in message and ("result" in message or "error" in message)


def error_response(request_id: RequestId | None, code: int, message: str, data: Any = None) -> Message:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def valid_message(message: Any) -> bool:
    """Shape check of one JSON-RPC 2.0 message (request, notification or response)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    if "method" in message:
        if not isinstance(message["method"], str):
            return False
        params = message.get("params")
        if params is not None and not isinstance(params, dict | list):
            return False
        return "id" not in message or _valid_id(message["id"])
    return "id" in message and ("result" in message or "error" in message)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
