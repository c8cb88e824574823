"""ToolHive's package schemes run directly, and a stdio command that cannot run here is refused before start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegate.cli.run_target import check_command, expand_target
from hivegate.errors import ConfigError


@pytest.mark.parametrize(
    ("target", "command"),
    [
        (["npx://@modelcontextprotocol/server-everything"], ["npx", "-y", "@modelcontextprotocol/server-everything"]),
        (["uvx://mcp-server-fetch", "--ignore-robots-txt"], ["uvx", "mcp-server-fetch", "--ignore-robots-txt"]),
        (["go://github.com/org/server@latest"], ["go", "run", "github.com/org/server@latest"]),
        (["python3", "server.py"], ["python3", "server.py"]),
    ],
)
def test_package_schemes_become_the_commands_that_run_them(target: list[str], command: list[str]) -> None:
    assert expand_target(target) == command


def test_a_command_on_the_servers_path_passes(tmp_path: Path) -> None:
    program = tmp_path / "my-server"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    check_command(["my-server"], {"PATH": str(tmp_path)})  # --env PATH=… is the PATH the server gets
    check_command([str(program)], {})
    with pytest.raises(ConfigError, match="command 'my-server' not found on PATH"):
        check_command(["my-server"], {"PATH": "/nonexistent"})


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("fetch", "command 'fetch' not found on PATH. hivegate runs commands and images, not ToolHive registry "
                  "names: give the server's command after --, e.g. `hivegate run -- uvx mcp-server-fetch`, or its "
                  "image with a registry or tag, e.g. docker.io/mcp/fetch or fetch:latest"),
        ("./server.py", "command './server.py' not found, or not executable"),
        ("uvx", "command 'uvx' not found on PATH: install it to run uvx:// packages"),
    ],
)  # fmt: skip
def test_what_cannot_run_says_what_was_probably_meant(program: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_command([program], {"PATH": "/nonexistent"})
    assert str(info.value).startswith(message)
