"""`hivegate run -f` with `sessionStorage: {provider: redis}`: two gateways in front of one stdio server command, as
an operator's replicas would be, share their client sessions through a real Redis (its password from a Secret)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from support.gateway import FIXTURE, hivegate_run
from support.redis_server import start_redis

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
PASSWORD = "redis-password-for-the-e2e-test"


def manifest(port: int) -> str:
    return f"""apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata:
  name: tools
  annotations: {{hivegate.dev/command: '{sys.executable} {FIXTURE}'}}
spec:
  image: example/tools
  replicas: 2
  sessionStorage:
    provider: redis
    address: 127.0.0.1:{port}
    passwordRef: {{name: redis, key: password}}
---
apiVersion: v1
kind: Secret
metadata: {{name: redis}}
stringData: {{password: {PASSWORD}}}
"""


def whoami(client: httpx.Client, url: str, session: str, request_id: int) -> httpx.Response:
    call = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    return client.post(url, json=call, headers={**ACCEPT, "mcp-session-id": session})


async def test_a_second_gateway_resumes_a_session_the_first_opened(tmp_path: Path) -> None:
    async with start_redis(password=PASSWORD) as redis:
        path = tmp_path / "tools.yaml"
        path.write_text(manifest(redis.port))
        args = ["-f", str(path), "--port", "0", "--anonymous"]
        async with hivegate_run(args) as a, hivegate_run(args) as b:
            assert not any("sessionStorage" in line for line in a.stderr)  # used: no warning
            with httpx.Client(timeout=30) as client:
                opened = client.post(a.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT},
                                     headers=ACCEPT)  # fmt: skip
                assert opened.status_code == 200, opened.text
                session = opened.headers["mcp-session-id"]
                note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                assert client.post(a.url, json=note, headers={**ACCEPT, "mcp-session-id": session}).status_code == 202
                assert whoami(client, a.url, session, 2).status_code == 200
                resumed = whoami(client, b.url, session, 3)
                assert resumed.status_code == 200, resumed.text  # B never saw the session: resumed from Redis
                assert client.get(f"{b.base}/readyz").json()["checks"]["session store"] == "ok"
                assert whoami(client, b.url, "no-such-session", 4).status_code == 404
