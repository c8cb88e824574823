"""`--tools NAME,...` (ToolHive's tool filter): only the tools named can be listed and called.

The filter is one more Cedar policy, so it goes through the same engine, list filtering and audit as every
other decision. The policy is a `forbid` of `call_tool` unless the tool is one of those named. With
`--authz-config` it is added to that file's policies and reloads with them. Without it, a `permit` of
everything else comes with it: the filter then limits tools and leaves prompts and resources alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from hivegate.authz.policy_config import AuthzConfig, CedarConfig
from hivegate.errors import ConfigError

if TYPE_CHECKING:
    from hivegate.authz.store import PolicySource

__all__ = ["TOOLS_POLICY_ID", "parse_tools", "tool_filter_source"]

TOOLS_POLICY_ID = "hivegate-tools-filter"
_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,128}$")  # the MCP specification's tool name characters (2025-11-25)


def parse_tools(values: Sequence[str]) -> tuple[str, ...]:
    """Every name of repeated, comma-separated `--tools` values; `ConfigError` for one a tool cannot have."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in names:
        if not _NAME.fullmatch(name):
            raise ConfigError(f"--tools: {name[:80]!r} is not a tool name (letters, digits, _ . / -; at most 128)")
    return tuple(dict.fromkeys(names))


def tool_filter_source(base: PolicySource | None, tools: Sequence[str]) -> PolicySource:
    """`base`'s policies (or a permit of everything) with the filter that allows only `tools` to be called."""
    return _Filtered(base, tuple(tools))


class _Filtered:
    def __init__(self, base: PolicySource | None, tools: tuple[str, ...]) -> None:
        self._base = base
        self._tools = tools
        listed = ", ".join(f'Tool::"{name}"' for name in tools)
        self._policy = (
            f'@id("{TOOLS_POLICY_ID}")\n'
            f'forbid(principal, action == Action::"call_tool", resource) unless {{ resource in [{listed}] }};'
        )
        self.name = f"{base.name} and --tools" if base is not None else "--tools"

    def read(self) -> bytes:
        return (self._base.read() if self._base is not None else b"") + self._policy.encode()

    def load(self) -> tuple[bytes, AuthzConfig]:
        if self._base is None:
            cedar = CedarConfig(policies=('@id("hivegate-permit-others")\npermit(principal, action, resource);',))
            raw, cfg = b"", AuthzConfig(version="1.0", cedar=cedar)
        else:
            raw, cfg = self._base.load()
        cedar = replace(cfg.cedar, policies=(*cfg.cedar.policies, self._policy))
        return raw + self._policy.encode(), replace(cfg, cedar=cedar)
