"""Bad input gets a clear answer, the right status and code, and the gateway keeps serving."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


async def _session(http: httpx.AsyncClient, url: str) -> str:
    resp = await http.post(url, json=INIT, headers=ACCEPT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"]["protocolVersion"] == "2025-06-18"
    session = resp.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    ack = await http.post(url, json=note, headers={**ACCEPT, "Mcp-Session-Id": session})
    assert ack.status_code == 202
    return session


async def test_malformed_requests_get_jsonrpc_errors_and_nothing_breaks() -> None:
    async with hivegate_run(["--max-body-size", "64KiB", *fixture_command()]) as gw, httpx.AsyncClient() as http:
        session = await _session(http, gw.url)
        headers = {**ACCEPT, "Mcp-Session-Id": session}

        resp = await http.post(gw.url, content=b"{not json", headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == -32700

        resp = await http.post(gw.url, json={"hello": "world"}, headers=headers)
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == -32600

        resp = await http.post(gw.url, content=b"[" + b"1," * 40_000 + b"1]", headers=headers)
        assert resp.status_code == 413

        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        }
        resp = await http.post(gw.url, json=call, headers={**ACCEPT, "Mcp-Session-Id": "no-such-session"})
        assert resp.status_code == 404
        assert resp.json()["id"] == 7

        resp = await http.post(gw.url, json=call, headers=ACCEPT)
        assert resp.status_code == 400

        resp = await http.post(gw.url, json=call, headers={**headers, "MCP-Protocol-Version": "1999-01-01"})
        assert resp.status_code == 400

        unknown = {"jsonrpc": "2.0", "id": 8, "method": "no/such/method"}
        resp = await http.post(gw.url, json=unknown, headers=headers)
        assert resp.json()["error"]["code"] == -32601

        resp = await http.post(gw.url, json=call, headers=headers)
        assert resp.status_code == 200
        assert resp.json()["result"]["content"][0]["text"] == "x"
        assert resp.json()["id"] == 7
        assert not any("Traceback" in line for line in gw.stderr)


async def test_dns_rebinding_and_foreign_origins_are_refused() -> None:
    async with hivegate_run(fixture_command()) as gw, httpx.AsyncClient() as http:
        resp = await http.post(gw.url, json=INIT, headers={**ACCEPT, "Origin": "https://evil.example"})
        assert resp.status_code == 403
        resp = await http.post(gw.url, json=INIT, headers={**ACCEPT, "Host": "evil.example"})
        assert resp.status_code == 403
        resp = await http.post(gw.url, json=INIT, headers={**ACCEPT, "Origin": "http://localhost:6274"})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "http://localhost:6274"


async def test_session_ids_are_bound_to_their_owner() -> None:
    from support.issuer import local_issuer

    async with local_issuer() as issuer:
        args = [
            "--oidc-issuer", issuer.url, "--oidc-audience", "hivegate-test", "--oidc-jwks-url", issuer.jwks_url,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", *fixture_command(),
        ]  # fmt: skip
        async with hivegate_run(args) as gw, httpx.AsyncClient() as http:
            alice = {"Authorization": f"Bearer {issuer.token(sub='alice')}"}
            bob = {"Authorization": f"Bearer {issuer.token(sub='bob')}"}
            resp = await http.post(gw.url, json=INIT, headers={**ACCEPT, **alice})
            session = resp.headers["mcp-session-id"]
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            resp = await http.post(gw.url, json=call, headers={**ACCEPT, **bob, "Mcp-Session-Id": session})
            assert resp.status_code == 404
            resp = await http.post(gw.url, json=call, headers={**ACCEPT, **alice, "Mcp-Session-Id": session})
            assert resp.status_code == 200


async def test_a_backend_that_cannot_start_is_a_jsonrpc_error(tmp_path: Path) -> None:
    server = tmp_path / "mcp-server"  # found and executable, but its interpreter is gone: exec fails per session
    server.write_text("#!/nonexistent/python3\n")
    server.chmod(0o755)
    async with hivegate_run(["--", str(server)]) as gw, httpx.AsyncClient() as http:
        resp = await http.post(gw.url, json=INIT, headers=ACCEPT)
        assert resp.status_code == 502
        body = resp.json()
        assert body["id"] == 1
        assert str(server) in body["error"]["message"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run"], "nothing to run"),
        (["run", "--port", "abc", "--", "x"], "--port"),
        (["run", "--oidc-issuer", "http://idp.example", "--oidc-audience", "a", "--", "x"], "--oidc-issuer"),
        (["run", "--oidc-issuer", "https://idp.example", "--", "x"], "--oidc-audience"),
        (["run", "--request-timeout", "soon", "--", "x"], "--request-timeout"),
        (
            ["run", "--ca-bundle", "/no/such/file", "--oidc-issuer", "https://i", "--oidc-audience", "a", "--", "x"],
            "--ca-bundle",
        ),
        (["run", "--transport", "sse", "--", "x"], "--transport"),
        (["run", "--no-such-flag", "--", "x"], "--no-such-flag"),
        (["run", "--host", "0.0.0.0", "--", "x"], "--anonymous"),
        (["run", "--max-sessions-per-user", "0", "--", "x"], "--max-sessions-per-user"),
        # what cannot run is refused before anything starts, in the background or not
        (["run", "fetch"], "command 'fetch' not found on PATH. hivegate runs commands and images, not ToolHive"),
        (["run", "--", "/nonexistent/mcp-server"], "command '/nonexistent/mcp-server' not found, or not executable"),
        (["run", "npx://"], "npx://: name the package to run"),
    ],
)
def test_bad_flags_are_one_line_errors_with_exit_code_2(argv: list[str], needle: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "hivegate", *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


async def test_a_2025_03_26_batch_gets_one_array_of_answers() -> None:
    async with hivegate_run(fixture_command()) as gw, httpx.AsyncClient() as http:
        session = await _session(http, gw.url)
        batch = [
            {
                "jsonrpc": "2.0",
                "id": "a",
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "1"}},
            },
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "x", "progress": 1}},
            {"jsonrpc": "2.0", "id": "b", "method": "ping"},
        ]
        resp = await http.post(gw.url, json=batch, headers={**ACCEPT, "Mcp-Session-Id": session})
        assert resp.status_code == 200
        replies = {r["id"]: r for r in resp.json()}
        assert replies["a"]["result"]["content"][0]["text"] == "1"
        assert replies["b"]["result"] == {}
        resp = await http.post(gw.url, json=[], headers={**ACCEPT, "Mcp-Session-Id": session})
        assert resp.status_code == 400


async def test_a_cancelled_request_ends_its_http_exchange() -> None:
    async with hivegate_run(fixture_command()) as gw, httpx.AsyncClient(timeout=20) as http:
        session = await _session(http, gw.url)
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Mcp-Session-Id": session}
        call = {
            "jsonrpc": "2.0",
            "id": 42,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 60}},
        }
        slow = asyncio.create_task(http.post(gw.url, json=call, headers=headers))
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42}}
        async with asyncio.timeout(10):
            while True:  # the cancellation may race the call to the backend: send it until the call ends
                ack = await http.post(gw.url, json=cancel, headers=headers)
                assert ack.status_code == 202
                done, _ = await asyncio.wait({slow}, timeout=0.2)
                if done:
                    break
        assert slow.result().status_code == 204
        ping = await http.post(gw.url, json={"jsonrpc": "2.0", "id": 43, "method": "ping"}, headers=headers)
        assert ping.json()["result"] == {}


async def test_the_backend_does_not_inherit_hivegates_secrets() -> None:
    env = {"HIVEGATE_OIDC_CLIENT_SECRET": "s3cret", "UNRELATED_SETTING": "kept"}
    async with hivegate_run([*fixture_command()], env=env) as gw, httpx.AsyncClient() as http:
        session = await _session(http, gw.url)
        headers = {**ACCEPT, "Mcp-Session-Id": session}

        async def getenv(name: str) -> str:
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "getenv", "arguments": {"name": name}},
            }
            resp = await http.post(gw.url, json=call, headers=headers)
            return str(resp.json()["result"]["content"][0]["text"])

        assert await getenv("UNRELATED_SETTING") == "kept"
        assert await getenv("HIVEGATE_OIDC_CLIENT_SECRET") == ""
