"""An MCP request as Cedar entities, shaped exactly like ToolHive's so its policies port unchanged.

- Principal `Client::"<sub>"` with a `claim_<name>` attribute per claim; parents are the caller's groups as
  `THVGroup::"<g>"` (or `group_entity_type`): from `group_claim_name`, else the first present of `groups`, `roles`,
  `cognito:groups` (the exact key first, then a dotted path such as `realm_access.roles`; arrays of strings only;
  deduplicated), plus the values of `role_claim_name`.
- Action `Action::"call_tool"`, `Action::"get_prompt"` or `Action::"read_resource"`.
- Resource `Tool::"<name>"` (`name`, `operation:"call"`, `feature:"tool"`, the annotation hints, `arg_<key>` per
  argument; standard attributes override arguments, which override annotations), `Prompt::"<name>"`
  (`operation:"get"`, `feature:"prompt"`) or `Resource::"<exact uri>"` (`name`, `uri`, `operation:"read"`,
  `feature:"resource"`), each with parent `MCP::"<server>"` and `backendName`, the name its server knows it by.
  For `hivegate run` the server is the workload (`--name`) and `backendName` equals `name`; behind a virtual MCP
  server an `Origin` places it: the parent is `MCP::"<backend>"`, the backend whose catalog it comes from, itself a
  child of `MCP::"<virtual server>"` (`backend_entity`), and `backendName` that backend's own name (`name` stays the
  advertised one). So `resource in MCP::"github"` holds whatever the naming strategy, and `resource in MCP::"<the
  virtual server>"` still holds for everything it serves. ToolHive has no such attribute (its audit events spell the
  backend `backend_name`).
- Context: every `claim_<name>` and `arg_<key>`.

JSON to Cedar values (better than ToolHive, which makes every number a `decimal` and drops nested values):
strings, booleans; integers become `Long`, and so do floats with an integral value (JSON does not tell `500.0`
from `500`, and neither does a backend validating its arguments); a number outside the 64-bit range becomes its
digits as a string, and another float a `decimal` when exactly representable with at most four fractional digits,
else its `repr` as a string: never dropped, so a guard comparing it errors rather than finding it absent (the
authorizer denies when a `forbid` errors); objects become records, arrays sets; `null` and anything nested deeper
than 10 levels are dropped. Record keys Cedar's JSON format
reserves (`__entity`, `__extn`, `__expr`) are dropped so a caller cannot smuggle an entity reference in an argument.
A claim that cannot be represented is dropped; bad *arguments* raise `EntityError` (the authorizer turns it into a
deny).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hivegate.core.principal import Principal
from hivegate.errors import HivegateError

__all__ = [
    "ACTION_RESOURCE_TYPE",
    "ANNOTATION_HINTS",
    "DEFAULT_GROUP_CLAIMS",
    "MAX_ARGUMENT_VALUES",
    "MAX_DEPTH",
    "ActionName",
    "EntityError",
    "Locator",
    "Origin",
    "argument_attrs",
    "backend_entity",
    "entity_key",
    "group_names",
    "has_action_hierarchy",
    "merge_entity",
    "principal_entity",
    "request_context",
    "resource_entity",
    "to_cedar_value",
]

ActionName = Literal["call_tool", "get_prompt", "read_resource"]
ACTION_RESOURCE_TYPE: Mapping[str, str] = {"call_tool": "Tool", "get_prompt": "Prompt", "read_resource": "Resource"}
DEFAULT_GROUP_CLAIMS = ("groups", "roles", "cognito:groups")
MAX_DEPTH = 10
MAX_ARGUMENT_VALUES = 4096
ANNOTATION_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile(r"-?\d{1,15}(\.\d{1,4})?")
_RESERVED_KEYS = frozenset({"__entity", "__extn", "__expr"})
_DROP = object()

Json = Any
Entity = dict[str, Any]


class EntityError(HivegateError, ValueError):
    """A request cannot be turned into Cedar entities (e.g. tool arguments that are not a JSON object)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an advertised tool, prompt or resource comes from: the backend (its `MCP::"<backend>"` parent) and the
    name that backend knows it by (`resource.backendName`)."""

    backend: str
    name: str


Locator = Callable[[ActionName, str], "Origin | None"]  # advertised name → its origin (None: not known)


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def to_cedar_value(value: Json, depth: int = 0, budget: _Budget | None = None) -> Json:
    """Convert a JSON value to Cedar's JSON attribute form; returns `_DROP` (module private) when unrepresentable."""
    if budget is not None:
        budget.left -= 1
        if budget.left < 0:
            raise EntityError(f"arguments too large (more than {MAX_ARGUMENT_VALUES} values)")
    if depth > MAX_DEPTH:
        return _DROP
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if _LONG_MIN <= value <= _LONG_MAX else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return _DROP
        if value.is_integer() and _LONG_MIN <= value <= _LONG_MAX:
            return int(value)
        text = repr(value)
        if _DECIMAL.fullmatch(text):
            return {"__extn": {"fn": "decimal", "arg": text}}
        return text
    if isinstance(value, Mapping):
        record = {}
        for k, v in value.items():
            if not isinstance(k, str) or k in _RESERVED_KEYS:
                continue
            converted = to_cedar_value(v, depth + 1, budget)
            if converted is not _DROP:
                record[k] = converted
        return record
    if isinstance(value, list | tuple):
        items = [to_cedar_value(v, depth + 1, budget) for v in value]
        return [v for v in items if v is not _DROP]
    return _DROP


def _lookup(claims: Mapping[str, Any], name: str) -> Any:
    if name in claims:
        return claims[name]
    node: Any = claims
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def group_names(claims: Mapping[str, Any], group_claim_name: str = "", role_claim_name: str = "") -> list[str]:
    """The caller's groups: the configured (or first present default) group claim plus the role claim, deduplicated."""
    found: list[str] = []
    for name in (group_claim_name,) if group_claim_name else DEFAULT_GROUP_CLAIMS:
        value = _lookup(claims, name)
        if isinstance(value, list):
            found = _strings(value)
            break
    if role_claim_name:
        found += _strings(_lookup(claims, role_claim_name))
    return list(dict.fromkeys(found))


def _claim_attrs(claims: Mapping[str, Any]) -> dict[str, Any]:
    attrs = {}
    for name, value in claims.items():
        converted = to_cedar_value(value)
        if converted is not _DROP:
            attrs[f"claim_{name}"] = converted
    return attrs


def principal_entity(
    principal: Principal, *, group_claim_name: str = "", role_claim_name: str = "", group_entity_type: str = "THVGroup"
) -> Entity:
    """`Client::"<sub>"` with `claim_*` attributes and group parents."""
    groups = group_names(principal.claims, group_claim_name, role_claim_name)
    return {
        "uid": {"type": "Client", "id": principal.subject},
        "attrs": _claim_attrs(principal.claims),
        "parents": [{"type": group_entity_type, "id": g} for g in groups],
    }


def argument_attrs(arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """`arg_<key>` attributes for tool arguments; raises `EntityError` if they are not a JSON object or too large."""
    if arguments is None:
        return {}
    if not isinstance(arguments, Mapping):
        raise EntityError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    budget = _Budget(MAX_ARGUMENT_VALUES)
    attrs = {}
    for key, value in arguments.items():
        converted = to_cedar_value(value, 1, budget)
        if isinstance(key, str) and converted is not _DROP:
            attrs[f"arg_{key}"] = converted
    return attrs


def resource_entity(
    action: ActionName,
    name: str,
    server: str,
    *,
    args: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Any] | None = None,
    backend_name: str | None = None,
) -> Entity:
    """`Tool::`, `Prompt::` or `Resource::` entity with its standard attributes, a child of `MCP::"<server>"`;
    `args` are already `arg_*` attrs; `backend_name` is the name the server knows it by (default: `name`)."""
    attrs: dict[str, Any] = {}
    if action == "call_tool":
        if annotations:
            attrs.update({h: annotations[h] for h in ANNOTATION_HINTS if isinstance(annotations.get(h), bool)})
        attrs.update(args or {})
        attrs.update(name=name, operation="call", feature="tool")
    elif action == "get_prompt":
        attrs.update(args or {})
        attrs.update(name=name, operation="get", feature="prompt")
    elif action == "read_resource":
        attrs.update(name=name, uri=name, operation="read", feature="resource")
    else:
        raise EntityError(f"unknown action {action!r}")
    attrs["backendName"] = name if backend_name is None else backend_name
    return {
        "uid": {"type": ACTION_RESOURCE_TYPE[action], "id": name},
        "attrs": attrs,
        "parents": [{"type": "MCP", "id": server}],
    }


def backend_entity(backend: str, server: str) -> Entity:
    """`MCP::"<backend>"`, a child of `MCP::"<server>"` (the virtual MCP server it serves behind)."""
    return {"uid": {"type": "MCP", "id": backend}, "attrs": {}, "parents": [{"type": "MCP", "id": server}]}


def request_context(principal_attrs: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """The request context: the `claim_*` and `arg_*` attributes (already converted)."""
    return {**principal_attrs, **args}


def merge_entity(base: Entity, overlay: Entity) -> Entity:
    """Merge a per-request entity over one from `entities_json` with the same uid: request attrs win, parents unite."""
    parents = list(base.get("parents", []))
    parents += [p for p in overlay["parents"] if p not in parents]
    return {"uid": overlay["uid"], "attrs": {**base.get("attrs", {}), **overlay["attrs"]}, "parents": parents}


def entity_key(entity: Mapping[str, Any]) -> tuple[str, str]:
    """The `(type, id)` key of an entity."""
    uid = entity["uid"]
    return (str(uid["type"]), str(uid["id"]))


def has_action_hierarchy(entities: Iterable[Mapping[str, Any]]) -> bool:
    """Whether `entities_json` defines an action hierarchy (an `Action` entity with parents)."""
    return any(entity_key(e)[0].endswith("Action") and e.get("parents") for e in entities)
