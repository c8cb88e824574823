"""`thv run` flags that hivegate takes as ToolHive does: `--proxy-port`, `--tools`, `--secret`, `--group` and
`--label`, through the real `hivegate run` process and a real MCP client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from support.backend import free_port
from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_tools_filter_secret_and_proxy_port_as_thv_takes_them(tmp_path: Path) -> None:
    port = free_port()
    authz = tmp_path / "authz.json"  # the filter narrows what the policies allow, it never widens it
    authz.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": [
        'permit(principal, action == Action::"call_tool", resource);',
        'forbid(principal, action == Action::"call_tool", resource == Tool::"whoami");',
    ]}}))  # fmt: skip
    args = ["--proxy-port", str(port), "--tools", "echo,getenv", "--tools", "whoami", "--authz-config", str(authz),
            "--secret", "weather-api,target=API_KEY", *fixture_command()]  # fmt: skip
    async with hivegate_run(args, env={"HIVEGATE_SECRET_WEATHER_API": "s3cret"}) as gw:
        assert gw.url == f"http://127.0.0.1:{port}/mcp"
        async with Client(streamable_http_client(gw.url), mode="legacy") as client:
            listed = sorted(tool.name for tool in (await client.list_tools()).tools)
            assert listed == ["echo", "getenv"]  # whoami: forbidden by the file's policy
            result = await client.call_tool("getenv", {"name": "API_KEY"})
            assert result.content[0].text == "s3cret"  # type: ignore[union-attr]
            for hidden in ("weather", "whoami"):
                with pytest.raises(MCPError):
                    await client.call_tool(hidden, {})
        assert not any("s3cret" in line for line in gw.stderr)


def test_group_and_labels_are_recorded_on_the_workload(tmp_path: Path) -> None:
    env = {**os.environ, "HIVEGATE_STATE_DIR": str(tmp_path / "state")}

    def hivegate(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hivegate", *argv], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    started = hivegate("run", "--name", "labelled", "--group", "team-a", "-l", "env=dev", "--label", "owner=me",
                       *fixture_command())  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        [record] = json.loads(hivegate("list", "--format", "json", "--group", "team-a").stdout)
        assert (record["name"], record["group"], record["labels"]) == (
            "labelled",
            "team-a",
            {"env": "dev", "owner": "me"},
        )
        assert json.loads(hivegate("list", "--format", "json", "--group", "default").stdout) == []
    finally:
        hivegate("stop", "--all")
