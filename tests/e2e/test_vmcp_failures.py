"""`hivegate vmcp` when things go wrong, through the real CLI: an HTTP backend killed mid-run and restarted on its port
(health checks, `/status`, `/api/backends/health`, calls refused naming it while the other backend keeps serving),
a backend unreachable at start-up under `partialFailureMode: fail` and `bestEffort`, and bad configurations and
manifests refused with one line naming the problem."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.test_vmcp_aggregation import connect, one_error_line, run_to_exit, stdio_backend, write_config
from support.backend import closed_port
from support.gateway import FIXTURE, hivegate_vmcp

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@dataclass
class HttpBackend:
    """The fixture MCP server over Streamable HTTP, to be killed and started again on the port it first bound."""

    port: int = 0
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, FIXTURE, "--http", str(self.port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            announced = json.loads(await self.process.stdout.readline())
        self.port = int(announced["port"])

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@asynccontextmanager
async def http_backend() -> AsyncIterator[HttpBackend]:
    backend = HttpBackend()
    await backend.start()
    try:
        yield backend
    finally:
        await backend.kill()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll `check` until it holds (no fixed sleep: the deadline fails the test)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def health(http: httpx.AsyncClient, base: str) -> dict[str, Any]:
    answer = await http.get(f"{base}/api/backends/health")
    assert answer.status_code == 200
    backends: dict[str, Any] = answer.json()["backends"]
    return backends


async def reported(http: httpx.AsyncClient, base: str, backend: str, state: str) -> bool:
    return bool((await health(http, base))[backend]["status"] == state)


def remote(backend: HttpBackend) -> dict[str, Any]:
    return {"name": "k8s", "url": backend.url, "transport": "streamable-http"}


def checks(mode: str) -> dict[str, Any]:
    """Health checks fast enough for a test: every 300 ms, unhealthy after two failures in a row."""
    return {"failureHandling": {"healthCheckInterval": "300ms", "unhealthyThreshold": 2, "partialFailureMode": mode}}


async def test_a_killed_http_backend_is_reported_unhealthy_while_the_other_serves_then_healthy_after_restart(
    tmp_path: Path,
) -> None:
    async with http_backend() as k8s:
        path = write_config(tmp_path, [remote(k8s), stdio_backend("local")], operational=checks("bestEffort"))
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            base = gateway.base
            client = await connect(http, gateway)
            assert {"k8s_get_pods", "local_echo"} <= set(await client.tools())
            assert await client.text("k8s_echo", text="before") == "before"
            assert (await http.get(f"{base}/status")).json()["status"] == "healthy"

            await k8s.kill()
            await eventually(lambda: reported(http, base, "k8s", "unhealthy"))
            down = (await health(http, base))["k8s"]
            assert down["consecutiveFailures"] >= 2
            assert "unreachable" in down["error"]
            status = (await http.get(f"{base}/status")).json()
            assert status["status"] == "degraded"
            assert {b["name"]: b["status"] for b in status["backends"]} == {"k8s": "unhealthy", "local": "healthy"}
            refused = (await client.call("k8s_echo", text="while down")).json()
            assert refused["error"]["message"] == "backend 'k8s' is unavailable", refused  # no internal detail
            assert await client.text("local_echo", text="still here") == "still here"  # bestEffort: the rest serves
            listed = set(await client.tools())
            assert "local_echo" in listed
            assert not any(n.startswith("k8s_") for n in listed)

            await k8s.start()
            await eventually(lambda: reported(http, base, "k8s", "healthy"))
            assert "error" not in (await health(http, base))["k8s"]
            assert (await http.get(f"{base}/status")).json()["status"] == "healthy"
            assert "k8s_echo" in await client.tools()
            fresh = await connect(http, gateway)
            assert await fresh.text("k8s_echo", text="after restart") == "after restart"


async def test_under_fail_a_dead_backends_calls_are_refused_naming_it_and_lists_fail(tmp_path: Path) -> None:
    async with http_backend() as k8s:
        path = write_config(tmp_path, [remote(k8s), stdio_backend("local")], operational=checks("fail"))
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            client = await connect(http, gateway)
            assert (await http.get(f"{gateway.base}/readyz")).status_code == 200
            await k8s.kill()
            await eventually(lambda: reported(http, gateway.base, "k8s", "unhealthy"))
            refused = (await client.call("k8s_echo", text="while down")).json()
            assert refused["error"]["message"] == "backend 'k8s' is unhealthy"
            listed = (await client.rpc("tools/list")).json()
            assert listed["error"]["message"] == "backend(s) k8s unavailable (partialFailureMode: fail)"
            assert await client.text("local_echo", text="calls still go") == "calls still go"

            async def not_ready() -> bool:  # /readyz caches its checks for a moment
                return (await http.get(f"{gateway.base}/readyz")).status_code == 503

            await eventually(not_ready)


async def test_under_best_effort_a_call_to_a_dead_backends_tool_names_the_backend(tmp_path: Path) -> None:
    async with http_backend() as k8s:
        path = write_config(tmp_path, [remote(k8s)], operational=checks("bestEffort"))
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            client = await connect(http, gateway)
            assert "k8s_echo" in await client.tools()
            await k8s.kill()
            await eventually(lambda: reported(http, gateway.base, "k8s", "unhealthy"))
            refused = (await client.call("k8s_echo", text="while down")).json()
            assert "'k8s'" in refused["error"]["message"], refused


async def test_a_session_open_across_a_backend_restart_gets_its_next_call_through(tmp_path: Path) -> None:
    async with http_backend() as k8s:
        path = write_config(tmp_path, [remote(k8s)], operational=checks("bestEffort"))
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            client = await connect(http, gateway)
            assert await client.text("k8s_echo", text="before") == "before"
            await k8s.kill()
            await eventually(lambda: reported(http, gateway.base, "k8s", "unhealthy"))
            await k8s.start()
            await eventually(lambda: reported(http, gateway.base, "k8s", "healthy"))
            assert await client.text("k8s_echo", text="after restart") == "after restart"


# -- start-up ----------------------------------------------------------------------------------------------------------


def unreachable_and_local() -> list[dict[str, Any]]:
    return [{"name": "gone", "url": f"http://127.0.0.1:{closed_port()}/mcp"}, stdio_backend("local")]


async def test_an_unreachable_backend_under_fail_stops_serve_naming_it(tmp_path: Path) -> None:
    failure = {"partialFailureMode": "fail"}
    path = write_config(tmp_path, unreachable_and_local(), operational={"failureHandling": failure})
    code, lines = await run_to_exit(["vmcp", "serve", "--config", path, "--port", "0"])
    assert code == 1
    line = one_error_line(lines, "serve")
    assert "backend unavailable at start-up (partialFailureMode: fail): gone: " in line
    assert "local" not in line


async def test_an_unreachable_backend_under_best_effort_is_served_around_and_reported(tmp_path: Path) -> None:
    failure = {"partialFailureMode": "bestEffort"}
    path = write_config(tmp_path, unreachable_and_local(), operational={"failureHandling": failure})
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        states = {name: b["status"] for name, b in (await health(http, gateway.base)).items()}
        assert states == {"gone": "unhealthy", "local": "healthy"}
        assert (await http.get(f"{gateway.base}/status")).json()["status"] == "degraded"
        assert (await http.get(f"{gateway.base}/readyz")).status_code == 200  # one healthy backend is enough
        client = await connect(http, gateway)
        names = set(await client.tools())
        assert "local_echo" in names
        assert not any(n.startswith("gone_") for n in names)
        assert await client.text("local_echo", text="served") == "served"
    assert any("gone" in line and "bestEffort" in line for line in gateway.stderr)


@pytest.mark.parametrize("with_local", [False, True], ids=["alone", "beside-a-healthy-one"])
async def test_a_backend_down_since_start_up_is_never_reported_healthy_at_later_failed_checks(
    tmp_path: Path, with_local: bool
) -> None:
    backends = unreachable_and_local() if with_local else unreachable_and_local()[:1]
    # checks every 200 ms, far below the threshold for a long while: what a check that fails leaves is on show
    failure = {"partialFailureMode": "bestEffort", "healthCheckInterval": "200ms", "unhealthyThreshold": 30}
    path = write_config(tmp_path, backends, operational={"failureHandling": failure})
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        base = gateway.base
        expected = "degraded" if with_local else "unhealthy"  # the server's own status: one backend of two, or none
        seen: set[tuple[str, str, int]] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0  # 15 checks, and /readyz's cached answer renewed past its 2 s
        while loop.time() < deadline:
            gone = (await health(http, base))["gone"]
            status = (await http.get(f"{base}/status")).json()["status"]
            ready = (await http.get(f"{base}/readyz")).status_code
            seen.add((gone["status"], status, ready))
            await asyncio.sleep(0.1)
        assert seen == {("unhealthy", expected, 200 if with_local else 503)}
        assert gone["consecutiveFailures"] >= 10  # the checks did run, and failed, all along


# -- bad configurations ------------------------------------------------------------------------------------------------

BAD_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "duplicate-backend": (
        {"backends": [stdio_backend("tools"), {"name": "tools", "url": "http://127.0.0.1:9/mcp"}]},
        "vmcp.yaml: backends[1].name: duplicate backend name 'tools'",
    ),
    "unknown-strategy": (
        {"backends": [stdio_backend("tools")], "aggregation": {"conflictResolution": "rename"}},
        "vmcp.yaml: aggregation.conflictResolution: must be one of prefix, priority, manual, got 'rename'",
    ),
    "priority-without-order": (
        {"backends": [stdio_backend("tools")], "aggregation": {"conflictResolution": "priority"}},
        "aggregation.conflictResolutionConfig.priorityOrder: required when conflictResolution is priority",
    ),
    "tools-for-unknown-backend": (
        {"backends": [stdio_backend("tools")], "aggregation": {"tools": [{"workload": "tols", "excludeAll": True}]}},
        "aggregation.tools[0].workload: no backend named 'tols' (known: tools)",
    ),
}


@pytest.mark.parametrize("command", ["validate", "serve"])
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
async def test_a_bad_config_is_refused_with_one_line_naming_the_problem(
    tmp_path: Path, case: str, command: str
) -> None:
    sections, expected = BAD_CONFIGS[case]
    config = {"name": "bad", "incomingAuth": {"type": "anonymous"}, **sections}
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config))
    extra = ["--port", "0"] if command == "serve" else []
    code, lines = await run_to_exit(["vmcp", command, "--config", str(path), *extra])
    assert code == 1
    assert lines == [one_error_line(lines, command)]  # exactly one line: nothing started, nothing logged
    assert expected in lines[0]


MANIFESTS = """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: team-tools}
spec:
  groupRef: {name: team}
  incomingAuth: {type: anonymous}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: team}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata:
  name: db
  annotations: {hivegate.dev/command: "python fixture.py"}
spec:
  groupRef: team
  image: example/never-pulled
  secrets: [{name: db-creds, key: password, targetEnvName: DB_PASSWORD}]
"""


async def test_a_manifest_naming_a_missing_secret_fails_validation_naming_it_and_how_to_provide_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "team.yaml").write_text(MANIFESTS)
    code, lines = await run_to_exit(["vmcp", "validate", "-f", str(tmp_path / "team.yaml")])
    assert code == 1
    assert lines == [
        "hivegate vmcp validate: team.yaml:doc3 MCPServer/db: spec.secrets[0]: secret db-creds/password not found "
        f"(set HIVEGATE_SECRET_DB_CREDS_PASSWORD, or create {tmp_path}/secrets/db-creds/password)"
    ]
    provided = {"HIVEGATE_SECRET_DB_CREDS_PASSWORD": "s3cret"}
    code, lines = await run_to_exit(["vmcp", "validate", "-f", str(tmp_path / "team.yaml")], env=provided)
    assert (code, lines) == (0, [])
