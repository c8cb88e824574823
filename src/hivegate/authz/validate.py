"""Check policies against hivegate's entity model (the shipped `schema.cedarschema`) before they are deployed.

Errors are policies that can never match a request hivegate builds: an action that does not exist (ToolHive's own
docs once used `Action::"tools/call"` for `Action::"call_tool"`), an entity type outside the model (say
`User::"alice"` for `Client::"alice"`), or a scope no action applies to (`action == Action::"call_tool"` with
`resource == Prompt::"p"`). Warnings are what the schema cannot know: `claim_*` and `arg_*` attributes (they depend on
the identity provider and the tool), optional attributes read without `has`, and entity types defined only in
`entities_json`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

from hivegate.authz.cedar import compile_policies, validate_against_schema
from hivegate.authz.policy_config import DEFAULT_GROUP_ENTITY_TYPE, AuthzConfig
from hivegate.authz.teach import missing_attribute

__all__ = ["PolicyProblem", "Severity", "schema_text", "validate_policies"]

Severity = Literal["error", "warning"]

ACTION_HINTS = {
    "tools/call": "call_tool",
    "prompts/get": "get_prompt",
    "resources/read": "read_resource",
    "resources/subscribe": "read_resource",
}
_UNKNOWN_ACTION = re.compile(r'unrecognized action `(?:[\w:]*::)?Action::"(.*)"`')
_UNKNOWN_TYPE = re.compile(r"unrecognized entity type `([^`]+)`")
_NO_ACTION = "unable to find an applicable action"


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One finding: `policy_id` as in decisions, `index` into `cedar.policies`, and a one-line message."""

    policy_id: str
    index: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: cedar.policies[{self.index}] ({self.policy_id}): {self.message}"


def schema_text(group_entity_type: str = DEFAULT_GROUP_ENTITY_TYPE) -> str:
    """The shipped Cedar schema, with the group entity type renamed when configured."""
    text = files("hivegate.authz").joinpath("schema.cedarschema").read_text(encoding="utf-8")
    return text if group_entity_type == DEFAULT_GROUP_ENTITY_TYPE else text.replace("THVGroup", group_entity_type)


def validate_policies(cfg: AuthzConfig) -> list[PolicyProblem]:
    """Validate every policy of `cfg`; raises `ConfigError` on syntax errors, returns the findings otherwise."""
    compiled = compile_policies(cfg.cedar.policies)
    index_of = {p.id: p.entry for p in compiled}
    extra_types = {str(e["uid"]["type"]) for e in json.loads(cfg.cedar.entities_json)}
    raw = validate_against_schema(compiled, schema_text(cfg.cedar.group_entity_type))
    explained = {pid for pid, m in raw if _UNKNOWN_TYPE.search(m) or _UNKNOWN_ACTION.search(m)}
    problems: list[PolicyProblem] = []
    for pid, message in raw:
        severity, text = _classify(message, extra_types, pid in explained)
        problem = PolicyProblem(pid, index_of[pid], severity, text) if text is not None else None
        if problem is not None and problem not in problems:  # one per attribute, not one per entity type
            problems.append(problem)
    return problems


def _classify(message: str, extra_types: set[str], explained: bool) -> tuple[Severity, str | None]:
    if action := _UNKNOWN_ACTION.search(message):
        name = action.group(1)
        hint = f'; did you mean Action::"{ACTION_HINTS[name]}"?' if name in ACTION_HINTS else ""
        return "error", (
            f'can never match: Action::"{name}" is not an action hivegate decides '
            f"(call_tool, get_prompt, read_resource){hint}"
        )
    if entity_type := _UNKNOWN_TYPE.search(message):
        name = entity_type.group(1)
        if name in extra_types:
            return "warning", f"entity type {name} exists only in entities_json; not checked against the schema"
        return "error", (
            f"can never match: entity type {name} is not in hivegate's entity model "
            "(Client, THVGroup, MCP, Tool, Prompt, Resource)"
        )
    if _NO_ACTION in message:
        if explained:  # already reported as an unknown action or entity type
            return "warning", None
        return "error", "can never match: no action applies to this principal/resource combination"
    return "warning", missing_attribute(message) or message
