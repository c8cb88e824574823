"""What `hivegate run` is asked to run, in ToolHive's vocabulary, and whether it can run here.

`expand_target` turns ToolHive's package schemes into the commands that run them directly: `npx://PKG` is
`npx -y PKG`, `uvx://PKG` is `uvx PKG`, and `go://PKG` is `go run PKG`. ToolHive builds a container for these;
hivegate runs the package manager on this machine. Arguments after the package are kept.

`is_image` tells a container image reference (`docker.io/mcp/everything`, `ghcr.io/org/server:1.2`) from a
command: a word with a registry, a path or a tag, that is neither a file nor a command on the `PATH`. A bare word
(`fetch`) is never an image: ToolHive reads it as a registry name, and so would a user coming from `thv`.

`check_command` refuses, before anything starts, a stdio command that is not on the `PATH` the server would get.
Without this check the gateway would say it was serving and then fail every session. The message guesses what was
meant: a ToolHive registry name, or a package whose runner is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence

from hivegate.errors import ConfigError

__all__ = ["check_command", "expand_target", "is_image"]

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


def is_image(word: str, env: Mapping[str, str]) -> bool:
    """Whether `word` names a container image rather than a command (see the module docstring)."""
    if word.startswith((".", "/", "-", "~")) or ("/" not in word and ":" not in word):
        return False
    if os.path.exists(word) or shutil.which(word, path=_path(env)) is not None:
        return False
    return _IMAGE.fullmatch(word) is not None


def _path(env: Mapping[str, str]) -> str:
    return env.get("PATH", os.environ.get("PATH", os.defpath))


def check_command(command: Sequence[str], env: Mapping[str, str]) -> None:
    """`ConfigError` when `command[0]` cannot be found on the server's `PATH` (`--env PATH=…` or this one's)."""
    program = command[0]
    if shutil.which(program, path=_path(env)) is not None:
        return
    runner = {runner[0]: scheme for scheme, runner in _SCHEMES.items()}.get(program)
    if runner is not None:
        raise ConfigError(f"command {program!r} not found on PATH: install it to run {runner} packages")
    if "/" not in program and ":" not in program:
        raise ConfigError(
            f"command {program!r} not found on PATH. hivegate runs commands and images, not ToolHive registry "
            "names: give the server's command after --, e.g. `hivegate run -- uvx mcp-server-fetch`, or its image "
            f"with a registry or tag, e.g. docker.io/mcp/{program} or {program}:latest"
        )
    raise ConfigError(f"command {program!r} not found, or not executable")
