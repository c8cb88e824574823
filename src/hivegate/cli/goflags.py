"""Command lines written for ToolHive's `thv` (Go flags) read the same here.

Go's flag package accepts `--flag=true|false` (and `1`, `0`, `t`, `f`, `TRUE`, `False`, ...) for every boolean,
where argparse accepts only `--flag`. `go_style(parser, argv)` rewrites those before argparse sees them:
`--foreground=true` becomes `--foreground`, and `--foreground=false` is dropped (every boolean flag is off by
default). It looks only at the flags of the subcommand named on the line, and stops at `--`, after which
everything belongs to the MCP server.

It also catches a flag and its value quoted together into one argument (`'--oidc-audience "toolhive"'`, as
happens in a YAML list or a pod spec's `args`). argparse would take that argument as the positional target.
`go_style` refuses it instead, in one line that names it and shows the spelling meant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hivegate.errors import ConfigError

__all__ = ["GoFlagError", "go_style"]

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class GoFlagError(ConfigError):
    """A command-line argument that cannot mean what it says; the message is one line for `parser.error` of the
    (sub)command that was reading it."""

    def __init__(self, message: str, parser: argparse.ArgumentParser) -> None:
        super().__init__(message)
        self.parser = parser


def go_style(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with Go-style boolean values rewritten for argparse; `GoFlagError` for an argument that quotes a
    flag and its value together."""
    out: list[str] = []
    current = parser
    booleans = _boolean_flags(parser)
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[i:])
        sub = _subcommand(current, arg)
        if sub is not None:
            current = sub
            booleans = _boolean_flags(sub)
            out.append(arg)
            continue
        if not arg.startswith("--"):
            out.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if any(c.isspace() for c in name):
            flag, *rest = name.split(None, 1)
            meant = rest[0].strip().strip("'\"") if rest else ""
            hint = f"; did you mean {flag}={meant}?" if meant else ""
            raise GoFlagError(f"argument {arg!r} is a flag and its value in one argument{hint}", current)
        if eq and name in booleans:
            if value in _TRUE:
                out.append(name)
            elif value not in _FALSE:
                raise GoFlagError(f"argument {name}: expected true or false, got {value[:40]!r}", current)
            continue
        out.append(arg)
    return out


def _boolean_flags(parser: argparse.ArgumentParser) -> frozenset[str]:
    return frozenset(
        option
        for action in parser._actions
        if isinstance(action, argparse._StoreTrueAction)
        for option in action.option_strings
        if option.startswith("--")
    )


def _subcommand(parser: argparse.ArgumentParser, arg: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(arg)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None
