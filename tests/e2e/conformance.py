"""Run the MCP conformance suite's server scenarios (npm `@modelcontextprotocol/conformance`).

The suite's CLI needs Node 22 (it crashes on Node 20), so it runs with the `node` that
tests/tools ships. One run of `conformance server --url URL --suite all -o DIR` goes through every
scenario in turn and writes `DIR/server-<scenario>-<timestamp>/checks.json`: a list of checks, each
with a `status` of SUCCESS, FAILURE, WARNING or INFO. A scenario passes when none of its checks
failed; warnings (SHOULD-level findings) are reported apart.

`start_conformance_server()` runs tests/fixtures/conformance_server.py, the SDK-built server with
every fixture those scenarios call, over streamable HTTP on 127.0.0.1. `inspector_cli()` asks the
MCP Inspector's headless CLI for one method against an MCP URL.

`run_authorization_scenarios()` runs the authorization-server scenarios, which only the 0.2.0 alphas have
(installed beside the pinned suite as npm `conformance-next`), against an OAuth authorization server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = [
    "CONFORMANCE_SERVER",
    "ScenarioResult",
    "inspector_cli",
    "list_server_scenarios",
    "run_authorization_scenarios",
    "run_server_scenarios",
    "start_conformance_server",
]

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tests" / "tools"
NODE = TOOLS / "node_modules" / ".bin" / "node"
CLI = TOOLS / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSPECTOR = (
    TOOLS / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
)
AUTHORIZATION_CLI = TOOLS / "node_modules" / "conformance-next" / "dist" / "index.js"
CONFORMANCE_SERVER = REPO / "tests" / "fixtures" / "conformance_server.py"

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
_AUTHORIZATION_RESULT_DIR = re.compile(
    r"^authorization-server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$"
)
_AUTHORIZATION_PROMPT = "Access the following URL in your browser"
_LISTED = re.compile(r"^\s+- (?P<scenario>\S+)(?: \[(?P<versions>[^\]]*)\])?$")


@dataclass(frozen=True)
class ScenarioResult:
    """The checks one scenario produced."""

    scenario: str
    checks: tuple[dict[str, Any], ...]

    def _ids(self, status: str) -> list[str]:
        return [check["id"] for check in self.checks if check["status"] == status]

    @property
    def failures(self) -> list[str]:
        return self._ids("FAILURE")

    @property
    def warnings(self) -> list[str]:
        return self._ids("WARNING")

    @property
    def passed(self) -> bool:
        return not self.failures

    def explain(self) -> str:
        """The failed and warned checks with their messages, for an assertion message."""
        return "; ".join(
            f"{check['status']} {check['id']}: {check.get('errorMessage', '')}"
            for check in self.checks
            if check["status"] in ("FAILURE", "WARNING")
        )


def _require_tools() -> None:
    if not (NODE.exists() and CLI.exists()):
        raise RuntimeError("conformance suite not installed: run scripts/install-test-deps.sh")


async def list_server_scenarios() -> dict[str, list[str]]:
    """Every server scenario the pinned suite knows, with the spec versions it applies to."""
    _require_tools()
    done = await anyio.run_process([str(NODE), str(CLI), "list", "--server"], cwd=TOOLS)
    scenarios: dict[str, list[str]] = {}
    for line in done.stdout.decode().splitlines():
        if match := _LISTED.match(line):
            scenarios[match["scenario"]] = match["versions"].split(",") if match["versions"] else []
    return scenarios


async def run_server_scenarios(
    url: str,
    scenarios: Sequence[str] | None = None,
    *,
    suite: str = "all",
    spec_version: str | None = None,
    timeout: float = 300,
) -> dict[str, ScenarioResult]:
    """Run server scenarios against `url` and return each one's result, by scenario name.

    With `scenarios=None`, one CLI run covers `suite` ("all", "active" — all but the pending
    scenarios — or "pending"); otherwise the CLI runs once per named scenario. A scenario the CLI
    could not run at all (a named one, or any of "all") comes back failed with a `scenario-not-run`
    check carrying the CLI's output.
    """
    _require_tools()
    if scenarios is not None:
        expected = list(scenarios)
        runs = [["--scenario", scenario] for scenario in scenarios]
    else:
        expected = list(await list_server_scenarios()) if suite == "all" else []
        runs = [["--suite", suite]]
    extra = ["--spec-version", spec_version] if spec_version else []
    results: dict[str, ScenarioResult] = {}
    outputs: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="conformance-") as out, anyio.fail_after(timeout):
        for selection in runs:
            command = [str(NODE), str(CLI), "server", "--url", url, *selection, *extra, "-o", out]
            done = await anyio.run_process(command, cwd=TOOLS, check=False)
            outputs[selection[1]] = (done.stdout + done.stderr).decode(errors="replace")[-4000:]
        for checks_file in sorted(Path(out).glob("*/checks.json")):
            if match := _RESULT_DIR.match(checks_file.parent.name):
                checks = tuple(json.loads(checks_file.read_text()))
                results[match["scenario"]] = ScenarioResult(match["scenario"], checks)
    for scenario in expected:
        if scenario not in results:
            output = outputs.get(scenario, outputs.get(suite, ""))
            not_run = {"id": "scenario-not-run", "status": "FAILURE", "errorMessage": output}
            results[scenario] = ScenarioResult(scenario, (not_run,))
    if not results:
        raise RuntimeError("the conformance suite produced no results:\n" + "\n".join(outputs.values()))
    return results


async def inspector_cli(url: str, method: str, *args: str, timeout: float = 60) -> Any:
    """`mcp-inspector --cli URL --transport http --method METHOD ARGS...`; returns its JSON answer."""
    _require_tools()
    command = [str(NODE), str(INSPECTOR), "--cli", url, "--transport", "http", "--method", method, *args]
    with anyio.fail_after(timeout):
        done = await anyio.run_process(command, cwd=TOOLS, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"inspector failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return json.loads(done.stdout)


async def run_authorization_scenarios(
    issuer: str,
    *,
    browse: Callable[[str], Coroutine[Any, Any, None]],
    client_id: str,
    client_secret: str | None = None,
    resource: str | None = None,
    port: int = 3000,
    timeout: float = 90,
) -> tuple[dict[str, ScenarioResult], str]:
    """Run every authorization-server scenario against `issuer`; return each one's result and the CLI's output.

    One `conformance authorization` run without `--scenario`: only then does the CLI hand the metadata scenario's
    result to `authorization-code-grant` (run alone, that one fails with "Invalid authorization server metadata").
    The grant prints an authorization URL and waits for a browser to reach `http://127.0.0.1:PORT/callback`:
    `browse(url)` is awaited with that URL and must end with the callback requested. `client_id` must be
    registered with that redirect URI; without `client_secret` the CLI authenticates with `none`.
    """
    if not (NODE.exists() and AUTHORIZATION_CLI.exists()):
        raise RuntimeError("conformance-next not installed: run scripts/install-test-deps.sh")
    options = ["--client-id", client_id, "--port", str(port)]
    options += ["--client-secret", client_secret] if client_secret else []
    options += ["--resource", resource] if resource else []
    results: dict[str, ScenarioResult] = {}
    output: list[str] = []
    with tempfile.TemporaryDirectory(prefix="conformance-as-") as out:
        command = [str(NODE), str(AUTHORIZATION_CLI), "authorization", "--url", issuer, *options, "-o", out]
        process = await anyio.open_process(command, cwd=TOOLS, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        lines = BufferedByteReceiveStream(process.stdout)
        try:
            with anyio.fail_after(timeout):
                async with anyio.create_task_group() as tasks:
                    while True:
                        try:
                            line = (await lines.receive_until(b"\n", 1 << 20)).decode(errors="replace")
                        except (anyio.IncompleteRead, anyio.EndOfStream):
                            break
                        if output and output[-1].startswith(_AUTHORIZATION_PROMPT):
                            tasks.start_soon(browse, line.strip())
                        output.append(line + "\n")
                await process.wait()
        finally:
            await _stop(process)
        for checks_file in sorted(Path(out).glob("*/checks.json")):
            if match := _AUTHORIZATION_RESULT_DIR.match(checks_file.parent.name):
                checks = tuple(json.loads(checks_file.read_text()))
                results[match["scenario"]] = ScenarioResult(match["scenario"], checks)
    if not results:
        raise RuntimeError("the conformance suite produced no results:\n" + "".join(output))
    return results, "".join(output)


@asynccontextmanager
async def start_conformance_server(*, startup_timeout: float = 30) -> AsyncIterator[str]:
    """Run the fixture server over streamable HTTP on 127.0.0.1; yields its MCP endpoint URL."""
    command = [sys.executable, str(CONFORMANCE_SERVER), "--http", "--port", "0"]
    process = await anyio.open_process(command, cwd=REPO, stderr=None)
    assert process.stdout is not None
    try:
        try:
            with anyio.fail_after(startup_timeout):
                line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 65536)
        except (anyio.IncompleteRead, anyio.EndOfStream) as exc:
            raise RuntimeError(f"conformance server exited early with {await process.wait()}") from exc
        yield str(json.loads(line)["url"])
    finally:
        await _stop(process)


async def _stop(process: Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
    with anyio.CancelScope(shield=True):
        await process.wait()
        await process.aclose()
