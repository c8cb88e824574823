"""README's first command: `hivegate demo` serves the bundled server behind JWT auth and prints a working token."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from e2e.conformance import inspector_cli

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PACKAGE = Path(__file__).resolve().parents[1] / "tools" / "package.json"


async def test_the_demo_prints_a_token_that_calls_its_tools() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivegate", "demo", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert proc.stdout is not None
    try:
        output = ""
        async with asyncio.timeout(30):
            while "export TOKEN=" not in output:
                line = await proc.stdout.readline()
                assert line, f"demo exited early: {output}"
                output += line.decode()
        url = re.search(r"at (http://\S+/mcp)", output).group(1)  # type: ignore[union-attr]
        token = re.search(r"export TOKEN=(\S+)", output).group(1)  # type: ignore[union-attr]
        async with httpx.AsyncClient() as http:
            assert (await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})).status_code == 401
        auth = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(url, http_client=auth), mode="legacy") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"echo", "add", "utc_now"}
            result = await client.call_tool("add", {"a": 2, "b": 40})
            assert result.content[0].text == "42"  # type: ignore[union-attr]
    finally:
        proc.terminate()
        await proc.wait()


async def test_the_printed_commands_run_as_printed_and_the_start_up_is_clean() -> None:
    """What a new user copies from the banner: curl's whole session (initialize, initialized, list, call with the
    session id), then the Inspector command (run with the pinned Inspector the tests install, as printed)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivegate", "demo", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        output = ""
        async with asyncio.timeout(30):
            while "Press Ctrl+C" not in output:
                line = await proc.stdout.readline()
                assert line, f"demo exited early: {output}"
                output += line.decode()
        assert "health: backend ok, keys ok" in output
        lines = output.splitlines()
        script = [line.strip() for line in lines if line.strip().startswith("export TOKEN=")]
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("SESSION=$(curl"))
        end = next(i for i, line in enumerate(lines) if line.startswith("Or with the MCP Inspector"))
        script += [line.strip() for line in lines[start:end]]
        script.append('echo "session=$SESSION"')
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", "\n".join(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(shell.communicate(), 30)
        text = out.decode()
        assert shell.returncode == 0, err.decode()
        assert re.search(r"session=\S{16,}", text), text
        assert '"name":"add"' in text
        assert '"text":"42"' in text
        # the Inspector command, exactly as printed, but with the Inspector the tests install (same version)
        inspector = next(line.strip() for line in lines if "@modelcontextprotocol/inspector@" in line)
        version = inspector.split("@modelcontextprotocol/inspector@", 1)[1].split()[0]
        assert version == json.loads(PACKAGE.read_text())["dependencies"]["@modelcontextprotocol/inspector"]
        url = re.search(r"at (http://\S+/mcp)", output).group(1)  # type: ignore[union-attr]
        token = re.search(r"export TOKEN=(\S+)", output).group(1)  # type: ignore[union-attr]
        listed = await inspector_cli(url, "tools/list", "--header", f"Authorization: Bearer {token}")
        assert {tool["name"] for tool in listed["tools"]} == {"echo", "add", "utc_now"}
        # the issuer the resource metadata names answers for itself
        async with httpx.AsyncClient() as http:
            metadata = (await http.get(url.replace("/mcp", "/.well-known/oauth-protected-resource"))).json()
            (issuer,) = metadata["authorization_servers"]
            for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
                found = await http.get(issuer + path)
                assert found.status_code == 200
                assert found.json()["issuer"] == issuer
    finally:
        proc.terminate()
        _, stderr = await proc.communicate()
    assert "Traceback" not in stderr.decode()
