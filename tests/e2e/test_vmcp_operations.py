"""Operations of `hivegate vmcp serve`, through the real CLI, under real signed tokens: the audit trail (`audit`) and
the Prometheus metrics on the MCP port (`telemetry.enablePrometheusMetricsPath`) for tool calls that succeed, end in a
tool error, fail, lose their backend and are denied by Cedar (`incomingAuth.authz`); and the start-up summary naming
the URL, the authentication mode, the policy count, the audit destination and every backend with its health."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.test_vmcp_aggregation import connect, stdio_backend, write_config
from support.gateway import RunningGateway, hivegate_vmcp
from support.issuer import LocalIssuer, local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "vmcp-ops"
POLICIES = [
    'permit(principal in THVGroup::"sre", action == Action::"call_tool", resource == Tool::"k8s_echo");',
    'permit(principal in THVGroup::"sre", action == Action::"call_tool", resource == Tool::"k8s_calculator");',
    'permit(principal in THVGroup::"sre", action == Action::"call_tool", resource == Tool::"k8s_retired");',
    'permit(principal in THVGroup::"sre", action == Action::"call_tool", resource == Tool::"k8s_crash");',
]


def incoming(issuer: LocalIssuer) -> dict[str, Any]:
    return {
        "type": "oidc",
        "oidc": {"issuer": issuer.url, "audience": AUDIENCE, "jwksUrl": issuer.jwks_url,
                 "insecureAllowHttp": True, "protectedResourceAllowPrivateIp": True},
        "authz": {"type": "cedar", "policies": POLICIES},
    }  # fmt: skip


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def scrape(http: httpx.AsyncClient, base: str) -> str:
    answer = await http.get(f"{base}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


async def summary_lines(gateway: RunningGateway) -> list[str]:
    """The start-up summary `hivegate vmcp serve` prints on stdout after the line with its URL."""
    assert gateway.process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(10):
        while not lines or not lines[-1].startswith("  status:"):
            line = (await gateway.process.stdout.readline()).decode()
            assert line, f"stdout ended: {lines}"
            lines.append(line.rstrip("\n"))
    return lines


async def test_audit_lines_metrics_and_summary_for_allowed_denied_and_failing_calls(tmp_path: Path) -> None:
    audit_file = tmp_path / "audit" / "vmcp-audit.jsonl"
    async with local_issuer() as issuer:
        config = {
            "incomingAuth": incoming(issuer),
            "audit": {"component": "ops-vmcp", "logFile": str(audit_file), "includeRequestData": True},
            "telemetry": {"enablePrometheusMetricsPath": True},
        }
        path = write_config(tmp_path, [stdio_backend("k8s"), stdio_backend("ops")], **config)
        sre = issuer.token(AUDIENCE, sub="sam", groups=["sre"], name="Sam SRE")
        dev = issuer.token(AUDIENCE, sub="dee", groups=["dev"])
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            summary = await summary_lines(gateway)
            before = await scrape(http, gateway.base)
            assert metric(before, "hivegate_mcp_requests_total", method="tools/call", outcome="success") == 0
            assert metric(before, "hivegate_vmcp_backends_healthy") == 2

            sam = await connect(http, gateway, sre)
            assert await sam.text("k8s_echo", text="allowed") == "allowed"
            tool_error = await sam.call("k8s_calculator", operation="add", a="not a number", b=2)
            assert tool_error.json()["result"]["isError"] is True  # the backend's own tool error
            retired = await sam.call("k8s_retired")  # permitted by a policy, offered by no backend
            assert retired.json()["error"] == {"code": -32602, "message": "Unknown tool: k8s_retired"}
            crashed = await sam.call("k8s_crash")  # the backend process exits without answering
            assert crashed.json()["error"]["code"] == -32000
            assert "'k8s'" in crashed.json()["error"]["message"]
            again = await sam.call("k8s_echo", text="after the crash")
            assert again.json()["result"]["content"][0]["text"] == "after the crash"
            dee = await connect(http, gateway, dev)
            denied = await dee.call("k8s_echo", text="nope")
            assert denied.status_code == 403
            assert denied.json()["error"] == {"code": 403, "message": "denied by policy"}
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            unauthenticated = await http.post(gateway.url, json=ping, headers={"authorization": "Bearer not-a-token"})
            assert unauthenticated.status_code == 401

            def audited() -> bool:
                return audit_file.exists() and audit_file.read_text().count('"type":"mcp_tool_call"') == 6

            async with asyncio.timeout(5):  # each line is written as its answer goes out
                while not audited():
                    await asyncio.sleep(0.05)
            after = await scrape(http, gateway.base)

    assert summary == [
        "  backends: k8s (healthy), ops (healthy)",
        "  catalog: 32 tools, 4 prompts, 2 resources (prefix)",
        f"  auth: OIDC issuer {issuer.url}, audience {AUDIENCE}",
        "  backend k8s: stdio processes per-session, stopped after 300 s idle",
        "  backend ops: stdio processes per-session, stopped after 300 s idle",
        f"  authz: {len(POLICIES)} Cedar policies (SIGHUP reloads them)",
        f"  audit: {audit_file}",
        f"  status: {gateway.base}/status",
    ]  # after "hivegate: serving virtual MCP server e2e at URL", the line the gateway was found by
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/mcp", gateway.url)

    lines = audit_lines(audit_file)
    calls = [line for line in lines if line["type"] == "mcp_tool_call"]
    assert [(c["subjects"]["user_id"], c["target"]["name"], c["outcome"]) for c in calls] == [
        ("sam", "k8s_echo", "success"),
        ("sam", "k8s_calculator", "application_error"),
        ("sam", "k8s_retired", "failure"),
        ("sam", "k8s_crash", "error"),
        ("sam", "k8s_echo", "success"),
        ("dee", "k8s_echo", "denied"),
    ]
    ok, app_error, failure, error, _, deny = calls
    assert ok["msg"] == "audit_event"
    assert ok["component"] == "ops-vmcp"
    assert re.fullmatch(r"[0-9a-f-]{36}", ok["audit_id"])
    assert ok["logged_at"].endswith("Z")
    assert ok["subjects"] == {"user_id": "sam", "user": "Sam SRE", "client_name": "e2e", "client_version": "1"}
    assert ok["target"] == {"endpoint": "/mcp", "method": "tools/call", "type": "tool", "name": "k8s_echo"}
    assert ok["source"]["type"] == "network"
    assert ok["source"]["value"] == "127.0.0.1"
    assert ok["source"]["extra"]["session_id"] == sam.session
    assert ok["metadata"]["extra"]["transport"] == "streamable-http"
    assert decided(ok) == {"decision": "allow", "policies": ["policy0"], "why": "permit"}
    assert ok["metadata"]["extra"]["authorization"]["input"]["resource"] == "k8s_echo"  # what replay re-decides
    # the backend it comes from, and its own name there: the MCP::"k8s" parent and resource.backendName
    assert ok["metadata"]["extra"]["authorization"]["input"]["backend"] == "k8s"
    assert ok["metadata"]["extra"]["authorization"]["input"]["backend_name"] == "echo"
    assert "error" not in ok["metadata"]["extra"]
    assert ok["data"]["request"] == {"name": "k8s_echo", "arguments": {"text": "allowed"}}  # as the client sent it
    assert calls[4]["source"]["extra"]["request_id"] == again.headers["x-request-id"]
    assert decided(app_error) == {"decision": "allow", "policies": ["policy1"], "why": "permit"}
    assert decided(failure) == {"decision": "allow", "policies": ["policy2"], "why": "permit"}
    assert failure["metadata"]["extra"]["error"] == {"code": -32602, "message": "Unknown tool: k8s_retired"}
    assert decided(error) == {"decision": "allow", "policies": ["policy3"], "why": "permit"}
    assert error["metadata"]["extra"]["error"]["code"] == -32000
    assert deny["target"]["name"] == "k8s_echo"
    assert decided(deny) == {"decision": "deny", "policies": [], "why": "no_policy"}
    assert deny["metadata"]["extra"]["error"] == {"code": 403, "message": "denied by policy"}
    initializes = [line for line in lines if line["type"] == "mcp_initialize"]
    assert [(i["subjects"]["user_id"], i["outcome"]) for i in initializes] == [("sam", "success"), ("dee", "success")]
    everything = audit_file.read_text() + "\n".join(gateway.stderr)
    assert sre not in everything
    assert dev not in everything

    def calls_of(outcome: str) -> float:
        return metric(after, "hivegate_mcp_requests_total", method="tools/call", outcome=outcome)

    assert {o: calls_of(o) for o in ("success", "application_error", "failure", "error", "denied")} == {
        "success": 2, "application_error": 1, "failure": 1, "error": 1, "denied": 1,
    }  # fmt: skip
    assert metric(after, "hivegate_mcp_requests_total", method="initialize", outcome="success") == 2
    assert metric(after, "hivegate_authz_decisions_total", decision="allow") == 5
    assert metric(after, "hivegate_authz_decisions_total", decision="deny") == 1
    assert metric(after, "hivegate_auth_failures_total", reason="invalid_token") == 1
    assert metric(after, "hivegate_http_requests_total", status="403") == 1
    assert metric(after, "hivegate_http_requests_total", status="401") == 1
    assert metric(after, "hivegate_mcp_request_duration_seconds_count", method="tools/call") == 6
    assert metric(after, "hivegate_backend_duration_seconds_count", method="tools/call") == 5  # not the denied one
    assert metric(after, "hivegate_active_sessions") == 2
    assert metric(after, "hivegate_vmcp_backends_healthy") == 2


def decided(line: dict[str, Any]) -> dict[str, Any]:
    """An audit line's decision without the recorded input (which `authz replay` reads)."""
    return {k: v for k, v in line["metadata"]["extra"]["authorization"].items() if k != "input"}
