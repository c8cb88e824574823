"""Every `--flag` a message of hivegate names is a flag of a hivegate command, and what the vMCP's own code says
names only flags of `hivegate vmcp`, so a hint never sends a user to a flag that the command rejects.

The messages are found in the source: every string constant (f-string parts too) outside docstrings. Flag names
that are a translation table's keys (replaced by config keys before they are shown) and the arguments hivegate
gives a container runtime or prints in example command lines are not hints."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from hivegate.cli.main import build_parser

SRC = Path(__file__).resolve().parents[3] / "src" / "hivegate"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9](?![\w-])")  # not a prefix such as "--oidc-"
# Arguments of `docker/podman run` and of the example commands `hivegate demo` prints (curl, the MCP inspector).
NOT_OURS = {"--cap-drop", "--filter", "--init", "--read-only", "--rm", "--security-opt", "--tmpfs",
            "--cli", "--header", "--method"}  # fmt: skip
# `run -f` reads manifests with the vMCP's readers: its messages name run's flags.
RUN_FILE = {"standalone.py", "proxyfields.py"}


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= flags_of(sub)
    return found


def subcommand(*path: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def mentioned(path: Path) -> set[str]:
    """The `--flags` in the strings of `path` that are not docstrings or a dict's keys."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Dict):
            skip.update(id(key) for key in node.keys if key is not None)
    return {
        flag
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        for flag in FLAG.findall(node.value)
    } - NOT_OURS


def test_every_flag_a_message_names_exists() -> None:
    known = flags_of(build_parser())
    unknown = {f"{path.relative_to(SRC)}: {flag}" for path in SRC.rglob("*.py") for flag in mentioned(path) - known}
    assert sorted(unknown) == []


@pytest.mark.parametrize(
    "path", sorted(p for p in (SRC / "vmcp").rglob("*.py") if p.name not in RUN_FILE), ids=lambda p: p.name
)
def test_the_vmcps_messages_name_only_vmcp_flags(path: Path) -> None:
    allowed = flags_of(subcommand("vmcp"))
    assert sorted(mentioned(path) - allowed) == []


def test_the_shared_authentication_hints_name_the_vmcp_key_too() -> None:
    """The SSRF guard and the JWKS fetcher serve run and vMCP alike: their hints name both spellings."""
    for path, flag, key in (
        (SRC / "httpclient" / "guard.py", "--jwks-allow-private-ip", "jwksAllowPrivateIP"),
        (SRC / "httpclient" / "guard.py", "--oidc-insecure-allow-http", "insecureAllowHTTP"),
        (SRC / "authn" / "jwks.py", "--jwks-auth-token-file", "jwksAuthTokenPath"),
    ):
        text = path.read_text(encoding="utf-8")
        assert f"{flag}, or {key} in a vMCP config" in text
