"""What `hivegate run` is asked to run, in ToolHive's vocabulary, and whether it can run here.

`expand_target` turns ToolHive's package schemes into the commands that run them directly: `npx://PKG` is
`npx -y PKG`, `uvx://PKG` is `uvx PKG`, and `go://PKG` is `go run PKG`. ToolHive builds a container for these;
hivegate runs the package manager on this machine. Arguments after the package are kept.

`check_command` refuses, before anything starts, a stdio command that is not on the `PATH` the server would get.
Without this check the gateway would say it was serving and then fail every session. The message guesses what was
meant: a ToolHive registry name, a container image, or a package whose runner is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence

from hivegate.errors import ConfigError

__all__ = ["check_command", "expand_target"]

_SCHEMES = {"npx://": ("npx", "-y"), "uvx://": ("uvx",), "go://": ("go", "run")}
# [registry/]name[:tag|@digest], as in `docker.io/mcp/everything` or `ghcr.io/org/server:1.2`
_IMAGE = re.compile(r"^(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9._/-]+(?::[\w.-]+|@sha256:[0-9a-f]+)?$")


def expand_target(target: Sequence[str]) -> list[str]:
    """`target` with a leading `npx://`, `uvx://` or `go://` package turned into the command that runs it."""
    if not target:
        return []
    for scheme, runner in _SCHEMES.items():
        if target[0].startswith(scheme):
            package = target[0][len(scheme) :]
            if not package:
                raise ConfigError(f"{scheme}: name the package to run (e.g. {scheme}@modelcontextprotocol/server-x)")
            return [*runner, package, *target[1:]]
    return list(target)


def check_command(command: Sequence[str], env: Mapping[str, str]) -> None:
    """`ConfigError` when `command[0]` cannot be found on the server's `PATH` (`--env PATH=…` or this one's)."""
    program = command[0]
    path = env.get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which(program, path=path) is not None:
        return
    runner = {runner[0]: scheme for scheme, runner in _SCHEMES.items()}.get(program)
    if runner is not None:
        raise ConfigError(f"command {program!r} not found on PATH: install it to run {runner} packages")
    if "/" not in program and ":" not in program:
        raise ConfigError(
            f"command {program!r} not found on PATH. hivegate runs commands, not ToolHive registry names: give the "
            "server's command after --, e.g. `hivegate run -- uvx mcp-server-fetch`"
        )
    if not program.startswith((".", "/")) and not os.path.exists(program) and _IMAGE.fullmatch(program):
        raise ConfigError(
            f"{program!r} looks like a container image; hivegate cannot run images yet: give the server's command "
            "after -- (e.g. `-- npx -y @modelcontextprotocol/server-everything`) or its URL"
        )
    raise ConfigError(f"command {program!r} not found, or not executable")
