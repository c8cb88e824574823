"""The MCP conformance suite through `hivegate run`: every scenario that passes directly passes through the gateway.

Two shapes: the fixture as a stdio child (the gateway implements Streamable HTTP itself), and the fixture as a
remote Streamable HTTP server (the gateway is a reverse proxy). Plus the MCP Inspector CLI as a second real client.
"""

from __future__ import annotations

import sys

import pytest

from e2e.conformance import CONFORMANCE_SERVER, inspector_cli, run_server_scenarios, start_conformance_server
from e2e.test_conformance_direct import EXPECTED_WARNINGS
from support.gateway import hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

# Over stdio the gateway answers every scenario with no warning at all: server-sse-polling's two SHOULD-level
# findings against the SDK's own HTTP transport (see EXPECTED_WARNINGS) do not apply to the gateway's transport.
STDIO_EXPECTED_WARNINGS: dict[str, set[str]] = {}


def _problems(results: dict[str, object], expected_warnings: dict[str, set[str]]) -> tuple[dict[str, str], dict]:
    failed = {name: r.explain() for name, r in results.items() if not r.passed}  # type: ignore[attr-defined]
    warnings = {name: set(r.warnings) for name, r in results.items() if r.warnings}  # type: ignore[attr-defined]
    return failed, warnings


async def test_conformance_through_the_gateway_over_stdio() -> None:
    async with hivegate_run(["--", sys.executable, str(CONFORMANCE_SERVER)]) as gw:
        results = await run_server_scenarios(gw.url, suite="all")
    failed, warnings = _problems(results, STDIO_EXPECTED_WARNINGS)
    assert failed == {}
    assert warnings == STDIO_EXPECTED_WARNINGS


async def test_conformance_through_the_gateway_as_reverse_proxy() -> None:
    async with start_conformance_server() as backend, hivegate_run([backend]) as gw:
        results = await run_server_scenarios(gw.url, suite="all")
    failed, warnings = _problems(results, EXPECTED_WARNINGS)
    assert failed == {}
    assert warnings == EXPECTED_WARNINGS


async def test_mcp_inspector_cli_through_the_gateway() -> None:
    async with hivegate_run(["--", sys.executable, str(CONFORMANCE_SERVER)]) as gw:
        listed = await inspector_cli(gw.url, "tools/list")
        called = await inspector_cli(gw.url, "tools/call", "--tool-name", "test_simple_text")
    assert "test_simple_text" in {tool["name"] for tool in listed["tools"]}
    assert called["content"] == [{"type": "text", "text": "This is a simple text response for testing."}]
