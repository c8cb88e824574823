"""`hivegate vmcp serve` with a stdio backend whose command does not exist, next to a healthy one, under
`partialFailureMode: bestEffort`, through the real CLI: the gateway starts and keeps running through the broken
backend's failed health checks, serves the healthy backend's tools, and reports the broken one as unhealthy in its
start-up summary, `/status` and `/api/backends/health` (names and states, never the command)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.test_vmcp_aggregation import connect, stdio_backend, write_config
from e2e.test_vmcp_operations import summary_lines
from support.gateway import hivegate_vmcp

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MISSING = "hivegate-e2e-no-such-mcp-server"  # on no PATH, as a server a user forgot to install
BROKEN = {"name": "broken", "command": MISSING, "args": ["--stdio"]}
# a health check every 200 ms, unhealthy after two failures in a row: several checks fail during a test
FAILURE_HANDLING = {"partialFailureMode": "bestEffort", "healthCheckInterval": "200ms", "unhealthyThreshold": 2}


def config(tmp_path: Path) -> str:
    operational = {"failureHandling": FAILURE_HANDLING}
    return write_config(tmp_path, [BROKEN, stdio_backend("local")], operational=operational)


async def backends_health(http: httpx.AsyncClient, base: str) -> dict[str, Any]:
    answer = await http.get(f"{base}/api/backends/health")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()["backends"]
    return found


async def test_a_missing_stdio_command_is_served_around_reported_unhealthy_and_never_crashes_the_gateway(
    tmp_path: Path,
) -> None:
    path = config(tmp_path)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        summary = await summary_lines(gateway)
        assert "  backends: broken (unhealthy), local (healthy)" in summary

        client = await connect(http, gateway)
        names = set(await client.tools())
        assert {"local_echo", "local_get_pods"} <= names
        assert not any(name.startswith("broken_") for name in names)
        assert await client.text("local_echo", text="served") == "served"
        assert await client.text("local_getenv", name="WHO") == "local"
        unknown = (await client.call("broken_echo", text="x")).json()
        assert unknown["error"] == {"code": -32602, "message": "Unknown tool: broken_echo"}

        first = await backends_health(http, gateway.base)
        await asyncio.sleep(1.0)  # about five more health checks, each failing to start the command
        health = await backends_health(http, gateway.base)
        assert {name: b["status"] for name, b in health.items()} == {"broken": "unhealthy", "local": "healthy"}
        assert health["broken"]["consecutiveFailures"] > first["broken"]["consecutiveFailures"]  # still retried
        assert "error" in health["broken"]
        assert "error" not in health["local"]
        status = (await http.get(f"{gateway.base}/status")).json()
        assert status["status"] == "degraded"
        assert {b["name"]: b["status"] for b in status["backends"]} == {"broken": "unhealthy", "local": "healthy"}
        assert (await http.get(f"{gateway.base}/readyz")).status_code == 200  # bestEffort: one healthy is enough

        assert gateway.process.returncode is None  # still running after the failed checks
        assert await client.text("local_echo", text="still served") == "still served"
        fresh = await connect(http, gateway)
        assert await fresh.text("local_echo", text="new session") == "new session"
    warnings = [line for line in gateway.stderr if "broken" in line and "bestEffort" in line]
    assert warnings, gateway.stderr
    assert not any("Traceback" in line for line in gateway.stderr)


async def test_the_health_endpoints_never_name_the_missing_command(tmp_path: Path) -> None:
    path = config(tmp_path)
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        health = (await http.get(f"{gateway.base}/api/backends/health")).text
        status = (await http.get(f"{gateway.base}/status")).text
    assert '"unhealthy"' in health
    assert MISSING not in health
    assert MISSING not in status
    assert "the backend process could not start" in health
