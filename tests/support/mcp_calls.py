"""Plain MCP over Streamable HTTP for e2e tests that need no SDK: the initialize request, and one tool call in a
session of its own."""

from __future__ import annotations

import json
from typing import Any

import httpx

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
}


def call_tool(url: str, name: str, arguments: dict[str, Any], *, end: bool = True) -> str:
    """Open an MCP session on `url`, call the tool `name` and return the text it answered; the session is ended
    afterwards unless `end` is False (its stdio server then keeps running until the gateway ends it)."""
    with httpx.Client(timeout=30) as http:
        resp = http.post(url, json=INIT, headers=ACCEPT)
        assert resp.status_code == 200, resp.text
        headers = {**ACCEPT, "Mcp-Session-Id": resp.headers["mcp-session-id"]}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert http.post(url, json=note, headers=headers).status_code == 202
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        resp = http.post(url, json=call, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.text
        if not resp.headers["content-type"].startswith("application/json"):  # an event stream: its data line
            body = next(ln[5:].strip() for ln in body.splitlines() if ln.startswith("data:") and ln[5:].strip())
        if end:
            http.delete(url, headers=headers)
    return str(json.loads(body)["result"]["content"][0]["text"])
