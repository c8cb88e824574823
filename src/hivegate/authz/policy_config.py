"""Authorization config in ToolHive's format: `{version, type: cedarv1, cedar: {policies, entities_json, ...}}`.

JSON, or YAML when the file name ends in `.yaml`/`.yml`. Decoding is strict: an unknown key, a missing `version`,
an unknown `type` or an empty policy list raises `ConfigError` with a one-line message naming the field. Policy
*syntax* is checked when the policies are compiled (`CedarAuthorizer.from_config`), which names the policy index
and the line and column of the error.

hivegate's addition beside `cedar`: `requiredScopes`, the OAuth scopes a token must carry to use a tool, prompt or
resource, keyed by its Cedar entity (`Tool::"delete_namespace"`, `Prompt::"name"`, `Resource::"<exact uri>"`):
`{"requiredScopes": {"Tool::\"delete_namespace\"": ["mcp:admin"]}}`. A call Cedar allows whose token lacks one
of them is refused with `insufficient_scope`, so the client can ask for them (MCP authorization, step-up).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError

__all__ = ["DEFAULT_GROUP_ENTITY_TYPE", "AuthzConfig", "CedarConfig", "load_authz_config", "parse_authz_config"]

DEFAULT_GROUP_ENTITY_TYPE = "THVGroup"
_TOP_KEYS = frozenset({"version", "type", "cedar", "requiredScopes"})
_ENTITY_REF = re.compile(r'(Tool|Prompt|Resource)::"((?:[^"\\]|\\.)*)"')
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 section 3.3
_CEDAR_KEYS = frozenset({"policies", "entities_json", "group_claim_name", "role_claim_name", "group_entity_type"})


@dataclass(frozen=True, slots=True)
class CedarConfig:
    """The `cedar` section: policy texts, extra entities (a JSON array as a string) and the claim mapping."""

    policies: tuple[str, ...]
    entities_json: str = "[]"
    group_claim_name: str = ""
    role_claim_name: str = ""
    group_entity_type: str = DEFAULT_GROUP_ENTITY_TYPE


@dataclass(frozen=True, slots=True)
class AuthzConfig:
    """A whole authorization config file. Only `type: cedarv1` is supported. `required_scopes` maps a Cedar entity
    (`("Tool", "delete_namespace")`) to the scopes a token needs to use it."""

    version: str
    cedar: CedarConfig
    type: str = "cedarv1"
    required_scopes: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


def load_authz_config(path: str | Path) -> AuthzConfig:
    """Read and decode an authorization config file (YAML by extension, else JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"authz config {p}: cannot read: {exc}") from exc
    try:
        data: Any = yaml.safe_load(text) if p.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise syntax_error(f"authz config {p}", exc) from None
    return parse_authz_config(data, source=str(p))


def parse_authz_config(data: Any, *, source: str = "authz config") -> AuthzConfig:
    """Decode an already-parsed document; `source` prefixes error messages."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: must be an object with version, type and cedar")
    _reject_unknown(data, _TOP_KEYS, source, "")
    version = data.get("version")
    if version is None or (isinstance(version, str) and not version.strip()):
        raise ConfigError(f"{source}: version is required")
    if not isinstance(version, str | int | float) or isinstance(version, bool):
        raise ConfigError(f"{source}: version must be a string")
    kind = data.get("type")
    if kind != "cedarv1":
        raise ConfigError(f"{source}: type must be 'cedarv1', got {kind!r}")
    cedar = data.get("cedar")
    if not isinstance(cedar, Mapping):
        raise ConfigError(f"{source}: cedar is required and must be an object")
    _reject_unknown(cedar, _CEDAR_KEYS, source, "cedar.")
    policies = cedar.get("policies")
    if not isinstance(policies, list) or not policies:
        raise ConfigError(f"{source}: cedar.policies must be a non-empty list of policy strings")
    for i, policy in enumerate(policies):
        if not isinstance(policy, str) or not policy.strip():
            raise ConfigError(f"{source}: cedar.policies[{i}] must be a non-empty string")
    entities_json = _string(cedar, "entities_json", source) or "[]"
    _check_entities_json(entities_json, source)
    return AuthzConfig(
        version=str(version),
        cedar=CedarConfig(
            policies=tuple(policies),
            entities_json=entities_json,
            group_claim_name=_string(cedar, "group_claim_name", source),
            role_claim_name=_string(cedar, "role_claim_name", source),
            group_entity_type=_string(cedar, "group_entity_type", source) or DEFAULT_GROUP_ENTITY_TYPE,
        ),
        required_scopes=_required_scopes(data.get("requiredScopes"), source),
    )


def _required_scopes(section: Any, source: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """`requiredScopes`: `{'Tool::"name"': [scope, ...]}` → `{("Tool", "name"): (scope, ...)}`."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f'{source}: requiredScopes must be an object like {{"Tool::\\"name\\"": ["scope"]}}')
    required: dict[tuple[str, str], tuple[str, ...]] = {}
    for key, scopes in section.items():
        at = f"requiredScopes[{json.dumps(key) if isinstance(key, str) else repr(key)}]"
        match = _ENTITY_REF.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise ConfigError(f'{source}: {at}: the key must be Tool::"<name>", Prompt::"<name>" or Resource::"<uri>"')
        name = re.sub(r"\\(.)", r"\1", match.group(2))  # Cedar string escapes: \" and \\
        if not name:
            raise ConfigError(f"{source}: {at}: the name must not be empty")
        if not isinstance(scopes, list) or not scopes:
            raise ConfigError(f"{source}: {at} must be a non-empty list of scopes")
        for i, scope in enumerate(scopes):
            if not isinstance(scope, str) or _SCOPE_TOKEN.fullmatch(scope) is None:
                raise ConfigError(f"{source}: {at}[{i}] must be a scope (RFC 6749 section 3.3), got {scope!r}")
        entity = (match.group(1), name)
        if entity in required:
            raise ConfigError(f"{source}: {at}: {match.group(1)} {name!r} is listed twice")
        required[entity] = tuple(dict.fromkeys(scopes))
    return required


def _reject_unknown(section: Mapping[Any, Any], allowed: frozenset[str], source: str, prefix: str) -> None:
    unknown = sorted(str(k) for k in section if k not in allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix}{unknown[0]} (allowed: {', '.join(sorted(allowed))})")


def _string(cedar: Mapping[str, Any], key: str, source: str) -> str:
    value = cedar.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{source}: cedar.{key} must be a string")
    return value


def _check_entities_json(text: str, source: str) -> None:
    try:
        entities = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: cedar.entities_json is not valid JSON: {exc}") from exc
    if not isinstance(entities, list):
        raise ConfigError(f"{source}: cedar.entities_json must be a JSON array of entities")
    for i, entity in enumerate(entities):
        uid = entity.get("uid") if isinstance(entity, dict) else None
        if not isinstance(uid, dict) or not isinstance(uid.get("type"), str) or not isinstance(uid.get("id"), str):
            raise ConfigError(f'{source}: cedar.entities_json[{i}] needs uid {{"type", "id"}}')
