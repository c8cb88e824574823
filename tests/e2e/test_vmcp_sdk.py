"""The virtual MCP server seen by the official SDK client: two sessions over a stdio and a Streamable HTTP backend;
log notifications and progress from a backend reach only the session whose call caused them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.test_run_stdio import sdk_client, text_of
from support.backend import fixture_http_server
from support.gateway import FIXTURE, hivegate_vmcp

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_logs_and_progress_from_each_backend_reach_only_the_calling_session(tmp_path: Path) -> None:
    logs: dict[str, list[str]] = {"a": [], "b": []}

    def on_log(who: str) -> Any:
        async def record(params: Any) -> None:
            logs[who].append(params.data)

        return record

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with fixture_http_server() as remote_url:
        config = {
            "name": "sdk",
            "incomingAuth": {"type": "anonymous"},
            "backends": [
                {"name": "local", "command": sys.executable, "args": [FIXTURE]},
                {"name": "remote", "url": remote_url, "transport": "streamable-http"},
            ],
        }
        path = tmp_path / "vmcp.yaml"
        path.write_text(yaml.safe_dump(config))
        async with (
            hivegate_vmcp(["--config", str(path), "--port", "0"]) as gw,
            sdk_client(gw.url, logging_callback=on_log("a")) as a,
            sdk_client(gw.url, logging_callback=on_log("b")) as b,
        ):
            names = {t.name for t in (await a.list_tools()).tools}
            assert {"local_log", "remote_log", "local_progress", "remote_progress"} <= names
            answers = await asyncio.gather(
                a.call_tool("local_log", {"message": "a via stdio"}),
                b.call_tool("local_log", {"message": "b via stdio"}),
                a.call_tool("remote_log", {"message": "a via http"}),
                b.call_tool("remote_log", {"message": "b via http"}),
            )
            assert [text_of(r) for r in answers] == ["logged"] * 4
            assert text_of(await a.call_tool("local_progress", {"steps": 3}, progress_callback=on_progress)) == "done"
            assert text_of(await b.call_tool("remote_progress", {"steps": 2}, progress_callback=on_progress)) == "done"
    assert sorted(logs["a"]) == ["a via http", "a via stdio"]
    assert sorted(logs["b"]) == ["b via http", "b via stdio"]
    assert progress == [1, 2, 3, 1, 2]
