"""The MCP conformance suite (and the MCP Inspector CLI) through the virtual MCP server: every server scenario
passes through `hivegate vmcp serve` as it does against the fixture directly, with the fixture as a stdio backend
shared by every session and as a Streamable HTTP backend. `manual` conflict resolution keeps the fixture's tool
names (the scenarios call them by name)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from e2e.conformance import CONFORMANCE_SERVER, inspector_cli, run_server_scenarios, start_conformance_server
from support.gateway import hivegate_vmcp
from support.mcp_calls import call_tool

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def config(tmp_path: Path, backend: dict[str, Any]) -> str:
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "conformance",
        "backends": [{"name": "everything", **backend}],
        "incomingAuth": {"type": "anonymous"},
        "aggregation": {"conflictResolution": "manual"},
    }))  # fmt: skip
    return str(path)


async def test_conformance_and_the_inspector_through_vmcp_with_a_shared_stdio_backend(tmp_path: Path) -> None:
    # every client session multiplexed onto one process: progress, sampling, elicitation and logging must still
    # reach the session they belong to (one process per session is the `hivegate run` conformance test's)
    backend = {"command": sys.executable, "args": [str(CONFORMANCE_SERVER)], "stdioSharing": "shared"}
    path = config(tmp_path, backend)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway:
        results = await run_server_scenarios(gateway.url, suite="all")
        called = await inspector_cli(gateway.url, "tools/call", "--tool-name", "test_simple_text")
    assert called["content"] == [{"type": "text", "text": "This is a simple text response for testing."}]
    assert len(results) >= 30
    assert {name: r.explain() for name, r in results.items() if not r.passed} == {}
    assert {name: r.warnings for name, r in results.items() if r.warnings} == {}


async def test_conformance_through_vmcp_with_an_http_backend(tmp_path: Path) -> None:
    async with (
        start_conformance_server() as backend,
        hivegate_vmcp(["--config", config(tmp_path, {"url": backend}), "--port", "0"]) as gateway,
    ):
        results = await run_server_scenarios(gateway.url, suite="all")
        # the backend closes this call's SSE stream before answering (SEP-1699); the vMCP resumes it
        resumed = await anyio.to_thread.run_sync(call_tool, gateway.url, "test_reconnection", {})
    assert resumed == "Reconnection test completed"
    assert len(results) >= 30
    assert {name: r.explain() for name, r in results.items() if not r.passed} == {}
    # none of the fixture's own SHOULD-level findings (server-sse-polling: no priming event, no retry field): the
    # vMCP answers a single result as JSON
    assert {name: r.warnings for name, r in results.items() if r.warnings} == {}
