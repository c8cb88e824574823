"""`--log-format json`: every line the gateway writes is JSON, the start-up line included, and uvicorn's own lines
are the gateway's (`hivegate.server`), its start-up chatter at debug only."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
import pytest

from support.gateway import fixture_command
from support.mcp_calls import call_tool

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def run_and_collect(*args: str) -> tuple[list[str], list[str]]:
    """Start `hivegate run --foreground ARGS`, make one request, stop it; its stdout and stderr lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivegate", "run", "--foreground", "--port", "0", *args, *fixture_command(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        first = (await proc.stdout.readline()).decode()
    url = json.loads(first)["url"] if first.startswith("{") else first.rsplit(" at ", 1)[1].strip()
    async with httpx.AsyncClient() as http:
        await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})  # no session: a 400, logged
    proc.terminate()
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return [first.rstrip(), *out.decode().splitlines()], err.decode().splitlines()


async def test_with_json_every_line_is_json_and_the_start_up_line_says_where_it_serves() -> None:
    out, err = await run_and_collect("--log-format", "json")
    lines = [line for line in out + err if line.strip()]
    assert lines
    for line in lines:
        json.loads(line)  # raises on any line that is not JSON
    served = json.loads(out[0])
    assert served["msg"].startswith("hivegate: serving ")
    assert served["url"].startswith("http://127.0.0.1:")
    assert any(item.startswith("health: backend ok") for item in served["summary"])
    assert not any("Started server process" in line for line in err)


async def test_uvicorns_start_up_lines_are_debug_and_named_for_the_gateway() -> None:
    _, quiet = await run_and_collect("--log-level", "info")
    assert not any("Started server process" in line for line in quiet)
    _, chatty = await run_and_collect("--log-level", "debug")
    assert any("hivegate.server: Started server process" in line for line in chatty)


async def test_with_log_output_stdout_every_line_is_on_stdout_and_stderr_stays_empty() -> None:
    """The deployments' setting (`--log-format json --log-output stdout`): one stream of JSON lines, the serving line
    first; the stdio server's stderr, relayed as the gateway's log lines in the foreground, is among them."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivegate", "run", "--foreground", "--port", "0", "--log-format", "json",
        "--log-output", "stdout", "--log-level", "debug", *fixture_command(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FIXTURE_STDERR_BANNER": "fixture says hello"},
    )  # fmt: skip
    assert proc.stdout is not None
    logged: list[dict[str, Any]] = []  # every stdout line, parsed: json.loads raises on one that is not JSON
    async with asyncio.timeout(30):
        while "url" not in (logged or [{}])[-1]:
            line = await proc.stdout.readline()
            assert line, "hivegate exited before serving"
            logged.append(json.loads(line))
    served = logged[-1]
    assert await asyncio.to_thread(call_tool, served["url"], "echo", {"text": "hi"}) == "hi"
    proc.terminate()
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    logged += [json.loads(entry) for entry in out.decode().splitlines()]
    assert served["msg"].startswith("hivegate: serving ")
    assert any(entry["logger"] == "hivegate.server" for entry in logged)  # uvicorn's, at debug
    assert any("fixture says hello" in entry["msg"] for entry in logged if entry["logger"] == "hivegate.server.stderr")
    assert err.decode() == ""
