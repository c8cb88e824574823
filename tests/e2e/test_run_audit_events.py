"""The audit trail of `hivegate run` for prompts and resources, through the real CLI: `mcp_prompt_get` and
`mcp_resource_read` lines (target name or URI, caller, outcome) for reads that succeed and fail at a stdio server
under a real signed token, and the `error` outcome when the remote server behind the gateway is gone (502)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.test_vmcp_failures import http_backend
from e2e.test_vmcp_operations import metric
from support.backend import free_port
from support.gateway import fixture_command, hivegate_run
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "audit-e2e", "version": "3"}}
AUDIENCE = "run-audit"


class Session:
    """One MCP session through the gateway over raw HTTP."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.http, self.url, self.headers = http, url, {**ACCEPT, **headers}
        self.ids = itertools.count(1)

    async def open(self) -> Session:
        answer = await self.rpc("initialize", INIT)
        assert answer.status_code == 200, answer.text
        self.headers["mcp-session-id"] = answer.headers["mcp-session-id"]
        note = await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                                    headers=self.headers)  # fmt: skip
        assert note.status_code == 202
        return self

    async def rpc(self, method: str, params: dict[str, Any]) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        return await self.http.post(self.url, json=body, headers=self.headers)

    async def prompt(self, name: str, **arguments: str) -> httpx.Response:
        return await self.rpc("prompts/get", {"name": name, "arguments": arguments})

    async def read(self, uri: str) -> httpx.Response:
        return await self.rpc("resources/read", {"uri": uri})


def audit_file_config(tmp_path: Path) -> tuple[Path, Path]:
    audit_file = tmp_path / "audit.jsonl"
    config = tmp_path / "audit.yaml"
    config.write_text(f"component: run-audit\nincludeResponseData: true\nlogFile: {audit_file}\n")
    return config, audit_file


async def audited(audit_file: Path, kinds: tuple[str, ...], count: int) -> list[dict[str, Any]]:
    """The audit lines of `kinds`, once there are `count` of them (each is written as its answer goes out)."""
    async with asyncio.timeout(5):
        while True:
            lines = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
            found = [line for line in lines if line["type"] in kinds]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


def body(answer: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer, sent as JSON or as an event stream (a remote server's streams pass through)."""
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        for line in answer.text.splitlines():
            if line.startswith("data:") and '"id"' in line:
                found: dict[str, Any] = json.loads(line[5:])
                return found
        raise AssertionError(f"no answer in the stream: {answer.text}")
    found = answer.json()
    return found


def the_text(answer: httpx.Response, kind: str) -> str:
    assert answer.status_code == 200, answer.text
    result = body(answer)["result"]
    if kind == "prompt":
        return str(result["messages"][0]["content"]["text"])
    return str(result["contents"][0]["text"])


async def test_prompt_gets_and_resource_reads_are_audited_with_their_target_caller_and_outcome(tmp_path: Path) -> None:
    config, audit_file = audit_file_config(tmp_path)
    diag_port = free_port()
    async with local_issuer() as issuer:
        args = ["--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", issuer.jwks_url,
                "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--audit-config", str(config),
                "--diagnostics-port", str(diag_port), *fixture_command()]  # fmt: skip
        token = issuer.token(AUDIENCE, sub="rita", name="Rita Reader")
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            session = await Session(http, gw.url, {"authorization": f"Bearer {token}"}).open()
            review = await session.prompt("review", code="x = 1")
            assert the_text(review, "prompt") == "Please review: x = 1"
            assert the_text(await session.read("docs://readme"), "resource") == "read me"
            assert the_text(await session.read("k8s://namespaces/prod"), "resource") == "namespace prod"
            missing_prompt = await session.prompt("no_such_prompt")
            assert "error" in body(missing_prompt), missing_prompt.text
            missing_resource = await session.read("docs://missing")
            assert "error" in body(missing_resource), missing_resource.text
            lines = await audited(audit_file, ("mcp_prompt_get", "mcp_resource_read"), 5)
            scraped = (await http.get(f"http://127.0.0.1:{diag_port}/metrics")).text

    prompt = {"endpoint": "/mcp", "method": "prompts/get", "type": "prompt"}
    resource = {"endpoint": "/mcp", "method": "resources/read", "type": "resource"}
    assert [(line["type"], line["target"], line["outcome"]) for line in lines] == [
        ("mcp_prompt_get", {**prompt, "name": "review"}, "success"),
        ("mcp_resource_read", {**resource, "uri": "docs://readme"}, "success"),
        ("mcp_resource_read", {**resource, "uri": "k8s://namespaces/prod"}, "success"),
        ("mcp_prompt_get", {**prompt, "name": "no_such_prompt"}, "failure"),
        ("mcp_resource_read", {**resource, "uri": "docs://missing"}, "failure"),
    ]
    review_line, readme_line = lines[0], lines[1]
    for line in lines:
        assert line["msg"] == "audit_event"
        assert line["component"] == "run-audit"
        assert line["subjects"] == {"user_id": "rita", "user": "Rita Reader", "client_name": "audit-e2e",
                                    "client_version": "3"}  # fmt: skip
        assert line["source"]["extra"]["session_id"] == session.headers["mcp-session-id"]
    assert review_line["source"]["extra"]["request_id"] == review.headers["x-request-id"]
    assert review_line["data"]["response"]["messages"][0]["content"]["text"] == "Please review: x = 1"
    assert readme_line["data"]["response"]["contents"][0]["text"] == "read me"
    for failed in lines[3:]:
        assert isinstance(failed["metadata"]["extra"]["error"]["code"], int)
        assert "data" not in failed
    assert token not in audit_file.read_text()
    counted = {(method, outcome): metric(scraped, "hivegate_mcp_requests_total", method=method, outcome=outcome)
               for method in ("prompts/get", "resources/read") for outcome in ("success", "failure")}  # fmt: skip
    assert counted == {
        ("prompts/get", "success"): 1, ("prompts/get", "failure"): 1,
        ("resources/read", "success"): 2, ("resources/read", "failure"): 1,
    }  # fmt: skip


async def test_prompt_gets_and_resource_reads_of_a_vanished_remote_server_are_audited_as_errors(
    tmp_path: Path,
) -> None:
    config, audit_file = audit_file_config(tmp_path)
    async with http_backend() as backend:
        args = ["--audit-config", str(config), backend.url]
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            session = await Session(http, gw.url, {}).open()
            assert the_text(await session.prompt("runbook", service="db"), "prompt") == "Runbook for db: restart it."
            assert the_text(await session.read("k8s://pods"), "resource") == "web-1, web-2"

            await backend.kill()
            gone_prompt = await session.prompt("runbook", service="db")
            gone_read = await session.read("k8s://pods")
            for answer in (gone_prompt, gone_read):
                assert answer.status_code == 502, answer.text
                assert answer.json()["error"]["code"] == -32000
            assert (await http.get(f"{gw.base}/health")).status_code == 200  # the gateway itself lives on
            lines = await audited(audit_file, ("mcp_prompt_get", "mcp_resource_read"), 4)

    assert [(line["type"], line["target"].get("name") or line["target"].get("uri"), line["outcome"])
            for line in lines] == [
        ("mcp_prompt_get", "runbook", "success"),
        ("mcp_resource_read", "k8s://pods", "success"),
        ("mcp_prompt_get", "runbook", "error"),
        ("mcp_resource_read", "k8s://pods", "error"),
    ]  # fmt: skip
    for line in lines[2:]:
        error = line["metadata"]["extra"]["error"]
        assert error["code"] == -32000  # the JSON-RPC error the client got, not just the HTTP status
        assert error["message"].endswith("is unreachable")
        assert "data" not in line
    assert lines[2]["source"]["extra"]["request_id"] == gone_prompt.headers["x-request-id"]


async def test_counters_tell_the_truth_restarts_and_refused_notifications(tmp_path: Path) -> None:
    """`hivegate_backend_restarts_total` counts restarts (and keeps them after the session ends); a
    `notifications/initialized` the gateway refuses (400: no session) is audited as a failure, not a success."""
    config, audit_file = audit_file_config(tmp_path)
    diag = free_port()
    args = ["--audit-config", str(config), "--diagnostics-port", str(diag), *fixture_command()]
    async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
        refused = await http.post(gw.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                                  headers=ACCEPT)  # fmt: skip
        assert refused.status_code == 400
        session = await Session(http, gw.url, {}).open()
        crashed = await session.rpc("tools/call", {"name": "crash", "arguments": {}})
        assert crashed.json()["error"]["code"] == -32000  # the backend went away mid-call

        async def restarts() -> float:
            return metric((await http.get(f"http://127.0.0.1:{diag}/metrics")).text, "hivegate_backend_restarts_total")

        async with asyncio.timeout(20):  # restarted with backoff
            while await restarts() < 1:
                await asyncio.sleep(0.1)
        assert (await http.delete(gw.url, headers=session.headers)).status_code == 200
        assert await restarts() == 1  # a counter: the session that restarted is gone, the restart still counted
    events = [json.loads(line) for line in audit_file.read_text().splitlines()]
    notes = [e for e in events if e["target"].get("method") == "notifications/initialized"]
    assert [e["outcome"] for e in notes] == ["failure", "success"]
    assert any("went away" in line and "restarting" in line for line in gw.stderr)
