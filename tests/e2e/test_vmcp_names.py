"""Finding 9 of the security review, through `hivegate vmcp serve` with real backends: a backend cannot take over
another backend's tool name, and names that break the MCP naming rule are never advertised."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from e2e.test_vmcp_aggregation import connect, one_error_line, run_to_exit, stdio_backend, write_config
from support.gateway import hivegate_vmcp

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_backends_whose_prefixes_begin_one_another_are_refused_at_load(tmp_path: Path) -> None:
    """The review's case: with `{workload}-`, github's `enterprise-create_issue` would be advertised as
    github-enterprise's `create_issue`."""
    backends = [stdio_backend("github"), stdio_backend("github-enterprise")]
    path = write_config(tmp_path, backends, aggregation={"conflictResolutionConfig": {"prefixFormat": "{workload}-"}})
    code, lines = await run_to_exit(["vmcp", "serve", "--config", path, "--port", "0"])
    assert code == 1
    assert one_error_line(lines, "serve") == (
        "hivegate vmcp serve: vmcp.yaml: aggregation.conflictResolutionConfig.prefixFormat: the prefix of backend "
        "'github' ('github-') begins the prefix of backend 'github-enterprise' ('github-enterprise-'), so a tool of "
        "one could be advertised under a name of the other; rename a backend or change prefixFormat"
    )


async def test_a_prefixed_name_equal_to_another_backends_is_advertised_for_neither(tmp_path: Path) -> None:
    # priority: a wins the clashing tools; b's are advertised as b_<name>, and a also offers a tool named "b_echo"
    backends = [stdio_backend("a", FIXTURE_TOOL_ALIAS="b_echo"), stdio_backend("b")]
    path = write_config(
        tmp_path, backends, aggregation={"conflictResolution": "priority",
                                         "conflictResolutionConfig": {"priorityOrder": ["a"]}},
    )  # fmt: skip
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        tools = await client.tools()
        assert "echo" in tools
        assert "b_echo" not in tools
        refused = await client.call("b_echo", text="hi")
        assert refused.json()["error"]["message"] == "Unknown tool: b_echo"
        log = "\n".join(gateway.stderr)
        assert "tool 'b_echo' is the name of backends a, b: a conflict, so none of them is advertised" in log
        assert log.count("tool 'b_echo' is the name of backends") == 1  # said once, not at every health check


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("evil\nname", "a name with characters other than A-Z, a-z, 0-9, '_', '-' and '.'"),
        ("w\u0435ather", "a name with characters other than A-Z, a-z, 0-9, '_', '-' and '.'"),
        ("x" * 100_000, "a name of 100000 characters (at most 128)"),
    ],
    ids=["newline", "confusable", "huge"],
)
async def test_a_tool_name_breaking_the_naming_rule_is_never_advertised(
    tmp_path: Path, name: str, problem: str
) -> None:
    path = write_config(tmp_path, [stdio_backend("a", FIXTURE_TOOL_ALIAS=name)])
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
        client = await connect(http, gateway)
        tools = await client.tools()
        assert "a_echo" in tools
        assert not any(tool.startswith("a_") and tool.removeprefix("a_") == name for tool in tools)
        assert len(tools) == len([t for t in tools if len(t) <= 128])
        assert f"of backend 'a' is not advertised: {problem}" in "\n".join(gateway.stderr)
