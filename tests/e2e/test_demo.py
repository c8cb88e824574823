"""README's first command: `hivegate demo` serves the bundled server behind JWT auth and prints a working token."""

from __future__ import annotations

import asyncio
import re
import sys

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


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
