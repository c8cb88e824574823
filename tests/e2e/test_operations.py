"""Operating a running gateway: the audit trail line by line, Prometheus metrics on the diagnostics port, health and
readiness, request ids, JSON logs, and secrets kept out of every log and audit line."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.backend import closed_port, free_port
from support.gateway import fixture_command, hivegate_run
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream"}
POLICIES = {
    "version": "1.0",
    "type": "cedarv1",
    "cedar": {"policies": ['permit(principal in THVGroup::"devs", action == Action::"call_tool", resource);']},
}


async def initialize(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
    client_info = {"name": "ops-test", "version": "1.2"}
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info}
    body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    answer = await http.post(url, json=body, headers={**ACCEPT, **headers})
    assert answer.status_code == 200, answer.text
    return {**ACCEPT, **headers, "mcp-session-id": answer.headers["mcp-session-id"]}


async def call(http: httpx.AsyncClient, url: str, headers: dict[str, str], rid: int, name: str, **args: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": args}}
    return await http.post(url, json=body, headers=headers)


def answer_of(response: httpx.Response) -> Any:
    """The JSON-RPC answer of a POST, sent as JSON or as the last `data:` event of an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_audit_metrics_readiness_and_no_secrets_in_any_line(tmp_path: Path) -> None:
    audit_file = tmp_path / "audit" / "audit.jsonl"
    (tmp_path / "audit.yaml").write_text(
        f"component: ops-gw\nincludeRequestData: true\nincludeResponseData: true\nmaxDataSize: 64\n"
        f"excludeEventTypes: [mcp_ping]\nlogFile: {audit_file}\n"
    )
    (tmp_path / "authz.json").write_text(json.dumps(POLICIES))
    async with local_issuer() as issuer:
        audience = "ops-audience"
        diag_port = free_port()
        args = [
            "--oidc-issuer", issuer.url, "--oidc-audience", audience, "--oidc-jwks-url", issuer.jwks_url,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--authz-config", str(tmp_path / "authz.json"),
            "--audit-config", str(tmp_path / "audit.yaml"), "--diagnostics-port", str(diag_port),
            "--log-format", "json", "--log-level", "debug", *fixture_command(),
        ]  # fmt: skip
        dev = issuer.token(audience, sub="dev-1", groups=["devs"], name="Dana Dev")
        guest = issuer.token(audience, sub="guest-1", groups=["guests"])
        async with hivegate_run(args) as gw, httpx.AsyncClient() as http:
            diag = f"http://127.0.0.1:{diag_port}"
            assert (await http.get(f"{diag}/health")).json() == {"status": "ok"}
            ready = await http.get(f"{gw.base}/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"backend": "ok", "keys": "ok", "authz policies": "ok"}
            assert (await http.get(f"{diag}/readyz")).status_code == 200

            dev_headers = await initialize(http, gw.url, {"authorization": f"Bearer {dev}"})
            ok = await call(http, gw.url, dev_headers, 1, "echo", text="x" * 200)
            assert ok.status_code == 200
            request_id = ok.headers["x-request-id"]
            tool_error = await call(http, gw.url, dev_headers, 2, "crash_unknown_tool")
            assert tool_error.status_code == 200  # the server answers with a tool error (isError)
            bad = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": [1]}}
            invalid = await http.post(gw.url, json=bad, headers=dev_headers)
            assert invalid.status_code == 400
            guest_headers = await initialize(http, gw.url, {"authorization": f"Bearer {guest}"})
            denied = await call(http, gw.url, guest_headers, 3, "echo", text="nope")
            assert denied.status_code == 403
            ping = {"jsonrpc": "2.0", "id": 4, "method": "ping"}
            await http.post(gw.url, json=ping, headers=dev_headers)
            tools_list = {"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": {}}
            dev_list = await http.post(gw.url, json=tools_list, headers=dev_headers)
            assert dev_list.status_code == 200
            dev_tools = answer_of(dev_list)["result"]["tools"]
            assert dev_tools  # devs may call every tool
            guest_list = await http.post(gw.url, json={**tools_list, "id": 7}, headers=guest_headers)
            assert answer_of(guest_list)["result"]["tools"] == []
            tasks = {"jsonrpc": "2.0", "id": 8, "method": "tasks/list", "params": {}}
            unknown = await http.post(gw.url, json=tasks, headers=dev_headers)
            assert unknown.status_code == 403
            unauthenticated = await http.post(gw.url, json=ping, headers={**ACCEPT, "authorization": "Bearer bad"})
            assert unauthenticated.status_code == 401

            scraped = (await http.get(f"{diag}/metrics")).text
            assert (await http.get(f"{gw.base}/metrics")).status_code == 404  # never on the MCP port
    lines = audit_lines(audit_file)
    tool_calls = [line for line in lines if line["type"] == "mcp_tool_call"]
    assert [c["outcome"] for c in tool_calls] == ["success", "application_error", "failure", "denied"]
    success, tool_error_line, failure, deny = tool_calls
    assert success["msg"] == "audit_event"
    assert success["component"] == "ops-gw"
    assert success["subjects"] == {"user_id": "dev-1", "user": "Dana Dev", "client_name": "ops-test",
                                   "client_version": "1.2"}  # fmt: skip
    assert success["target"] == {"endpoint": "/mcp", "method": "tools/call", "type": "tool", "name": "echo"}
    assert success["source"]["type"] == "network"
    assert success["source"]["value"] == "127.0.0.1"
    assert success["source"]["extra"]["request_id"] == request_id
    allowed = success["metadata"]["extra"]["authorization"]
    assert {k: allowed[k] for k in ("decision", "policies", "why")} == {"decision": "allow", "policies": ["policy0"],
                                                                         "why": "permit"}  # fmt: skip
    decided_on = allowed["input"]
    assert (decided_on["action"], decided_on["resource"]) == ("call_tool", "echo")
    assert decided_on["server"]  # the workload's name: every resource's MCP::"<server>" parent
    assert decided_on["principal"]["sub"] == "dev-1"
    assert decided_on["principal"]["claims"]["groups"] == ["devs"]
    # request data is on, but 200 characters exceed maxDataSize: only the arguments policies read (none) are kept
    assert (decided_on["arguments"], decided_on["arguments_complete"]) == ({}, False)
    assert success["data"]["request"]["truncated"] is True  # 200 characters of text > maxDataSize 64
    assert re.fullmatch(r"[0-9a-f-]{36}", success["audit_id"])
    assert success["logged_at"].endswith("Z")
    assert tool_error_line["target"]["name"] == "crash_unknown_tool"
    assert failure["metadata"]["extra"]["error"]["code"] == -32602
    assert deny["subjects"]["user_id"] == "guest-1"
    denied_record = deny["metadata"]["extra"]["authorization"]
    assert {k: denied_record[k] for k in ("decision", "policies", "why")} == {"decision": "deny", "policies": [],
                                                                               "why": "no_policy"}  # fmt: skip
    assert denied_record["input"]["principal"]["claims"]["groups"] == ["guests"]
    assert deny["metadata"]["extra"]["error"] == {"code": 403, "message": "denied by policy"}
    assert not [line for line in lines if line["type"] == "mcp_ping"]  # excluded by the config
    assert [line["outcome"] for line in lines if line["type"] == "mcp_initialize"] == ["success", "success"]
    # a filtered list is summarised (counts, never the items); a method never let through is a deny by no policy
    lists = [line for line in lines if line["type"] == "mcp_tools_list"]
    assert [(line["subjects"]["user_id"], line["outcome"]) for line in lists] == [
        ("dev-1", "success"),
        ("guest-1", "success"),
    ]
    assert [line["metadata"]["extra"]["authorization"] for line in lists] == [
        {"decision": "filter", "allowed": len(dev_tools), "denied": 0},
        {"decision": "filter", "allowed": 0, "denied": len(dev_tools)},
    ]
    (tasks_line,) = [line for line in lines if line["target"]["method"] == "tasks/list"]
    assert tasks_line["type"] == "mcp_request"
    assert tasks_line["outcome"] == "denied"
    assert tasks_line["metadata"]["extra"]["authorization"] == {"decision": "deny", "policies": [], "why": "method"}

    assert metric(scraped, "hivegate_mcp_requests_total", method="tools/call", outcome="success") == 1
    assert metric(scraped, "hivegate_mcp_requests_total", method="tools/call", outcome="denied") == 1
    assert metric(scraped, "hivegate_mcp_requests_total", method="tools/call", outcome="failure") == 1
    assert metric(scraped, "hivegate_mcp_requests_total", method="tools/call", outcome="application_error") == 1
    assert metric(scraped, "hivegate_authz_decisions_total", decision="deny") == 2  # the guest's call, tasks/list
    assert metric(scraped, "hivegate_auth_failures_total", reason="invalid_token") == 1
    assert metric(scraped, "hivegate_mcp_request_duration_seconds_count", method="tools/call") == 4
    assert metric(scraped, "hivegate_active_sessions") == 2
    # three calls reached the backend (the denied one did not)
    assert metric(scraped, "hivegate_backend_duration_seconds_count", method="tools/call") == 3
    assert metric(scraped, "hivegate_check_up", check="backend") == 1
    assert metric(scraped, "hivegate_check_up", check="authz policies") == 1
    assert metric(scraped, "hivegate_check_up", check="keys") == 1

    everything = audit_file.read_text() + "\n".join(gw.stderr)
    for secret in (dev, guest, "Bearer"):
        assert secret not in everything
    json_logs = [json.loads(line) for line in gw.stderr if line.strip()]  # every line, uvicorn's too, is JSON
    assert any(entry["logger"] == "hivegate.server" for entry in json_logs)  # uvicorn's, at debug
    assert any(entry.get("request_id") == deny["source"]["extra"]["request_id"] for entry in json_logs)


async def test_legacy_sse_calls_are_audited_with_the_answer_from_the_stream(tmp_path: Path) -> None:
    """The legacy transport accepts each POST (202) and answers on the event stream: the audit line and the metrics
    still carry the call's real outcome, once it is known."""
    audit_file = tmp_path / "audit.jsonl"
    (tmp_path / "audit.yaml").write_text(f"logFile: {audit_file}\n")
    diag_port = free_port()
    args = ["--proxy-mode", "sse", "--audit-config", str(tmp_path / "audit.yaml"),
            "--diagnostics-port", str(diag_port), *fixture_command()]  # fmt: skip
    async with (
        hivegate_run(args) as gw,
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", gw.url, headers={"accept": "text/event-stream"}) as stream,
    ):
        events = stream.aiter_lines()

        async def answer() -> dict[str, Any]:
            async with asyncio.timeout(15):
                async for line in events:
                    if line.startswith("data:") and line[5:].strip().startswith("{"):
                        found: dict[str, Any] = json.loads(line[5:])
                        return found
            raise AssertionError("event stream ended")

        async for line in events:
            if line.startswith("data:"):
                post_url = gw.base + line[5:].strip()
                break
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}}  # fmt: skip  # noqa: E501
        assert (await http.post(post_url, json=init)).status_code == 202
        assert (await answer())["id"] == 0
        for rid, name in ((1, "echo"), (2, "crash_unknown_tool")):
            body = {
                "jsonrpc": "2.0",
                "id": rid,
                "method": "tools/call",
                "params": {"name": name, "arguments": {"text": "hi"}},
            }
            assert (await http.post(post_url, json=body)).status_code == 202
            assert (await answer())["id"] == rid
        await asyncio.sleep(0.2)  # the audit line is written as the answer goes out
        scraped = (await http.get(f"http://127.0.0.1:{diag_port}/metrics")).text
    calls = [line for line in audit_lines(audit_file) if line["type"] == "mcp_tool_call"]
    assert [(c["target"]["name"], c["outcome"]) for c in calls] == [
        ("echo", "success"),
        ("crash_unknown_tool", "application_error"),
    ]
    assert metric(scraped, "hivegate_mcp_requests_total", method="tools/call", outcome="success") == 1
    assert metric(scraped, "hivegate_mcp_requests_total", method="tools/call", outcome="application_error") == 1


async def test_readiness_fails_when_a_remote_backend_is_down() -> None:
    closed = closed_port()
    async with hivegate_run([f"http://127.0.0.1:{closed}/mcp"]) as gw, httpx.AsyncClient() as http:
        ready = await http.get(f"{gw.base}/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert "cannot connect" in ready.json()["checks"]["backend"]
        assert (await http.get(f"{gw.base}/health")).status_code == 200


def test_an_unwritable_audit_log_is_a_start_up_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    (tmp_path / "audit.yaml").write_text(f"logFile: {blocker}/audit.log\n")
    cases = [
        (["--audit-config", str(tmp_path / "audit.yaml")], "audit logFile"),
        (["--audit-config", str(tmp_path / "missing.yaml")], "audit config"),
        (["--diagnostics-port", "70000"], "--diagnostics-port"),
    ]
    for extra, expected in cases:
        done = subprocess.run(
            [sys.executable, "-m", "hivegate", "run", "--foreground", *extra, *fixture_command()],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1
        assert expected in errors[0]
        assert "Traceback" not in done.stderr


async def test_start_up_prints_one_summary_with_auth_policies_and_backend_health(tmp_path: Path) -> None:
    policies = tmp_path / "authz.json"
    policies.write_text(json.dumps(POLICIES))
    async with local_issuer() as issuer:
        args = ["--port", "0", "--oidc-issuer", issuer.url, "--oidc-audience", "ops", "--oidc-insecure-allow-http",
                "--jwks-allow-private-ip", "--authz-config", str(policies), "--enable-audit"]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hivegate", "run", "--foreground", *args, *fixture_command(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(30):
                while not lines or not lines[-1].startswith("  health:"):
                    line = (await proc.stdout.readline()).decode()
                    assert line, f"hivegate exited: {lines}"
                    if line.startswith(("hivegate:", "  ")):
                        lines.append(line.rstrip("\n"))
        finally:
            proc.terminate()
            await proc.wait()
    assert re.fullmatch(r"hivegate: serving stdio-server \(stdio: .*\) at http://127\.0\.0\.1:\d+/mcp", lines[0])
    assert f"  auth: OIDC issuer {issuer.url}, audience ops" in lines
    assert f"  authz: 1 Cedar policies from {policies}" in lines
    assert "  audit: standard output" in lines
    assert lines[-1] == "  health: backend ok, keys ok, authz policies ok"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_a_full_disk_under_the_audit_log_costs_requests_nothing(tmp_path: Path) -> None:
    """`/dev/full` accepts the open and fails every write with ENOSPC: calls keep working, the gateway says why once."""
    (tmp_path / "audit.yaml").write_text("logFile: /dev/full\n")
    args = ["--audit-config", str(tmp_path / "audit.yaml"), *fixture_command()]
    async with hivegate_run(args) as gw, httpx.AsyncClient() as http:
        headers = await initialize(http, gw.url, {})
        for rid in range(1, 6):
            answer = await call(http, gw.url, headers, rid, "echo", text=f"call {rid}")
            assert answer.status_code == 200
            assert f"call {rid}" in answer.text
        assert (await http.get(f"{gw.base}/health")).status_code == 200
    errors = [line for line in gw.stderr if "ERROR" in line]
    assert len(errors) == 1, gw.stderr
    assert "cannot write the audit log" in errors[0]
    assert "No space left on device" in errors[0]
    assert not any("Traceback" in line for line in gw.stderr)
