"""Checking a manifest against the CRDs offline, as the API server would: the schema, its defaults, its CEL rules.

`validate(body)` gives the problems of one resource of a kind in `KINDS` (empty when it would be admitted), each
`<Kind>/<name>: <field path>: <problem>`. Like the API server it first fills in the schema's defaults, then checks
the structural schema (types, enums, patterns, required keys; a key no `properties` names is an unknown field unless
the node has `x-kubernetes-preserve-unknown-fields`), then evaluates each `x-kubernetes-validations` rule with `self`
bound to the node that carries it, where that node is present. Kubernetes' CEL is evaluated by `cel-python`; the
rules use only `has()`, comparisons, `size()` and the ternary, which it implements as Kubernetes does.

Needs `jsonschema` and `cel-python` (`pip install 'hivegate[test]'`); other kinds of resources are not checked.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from hivegate.config.syntax import syntax_error
from hivegate.crds import GROUP, KINDS, SERVED, kind_named
from hivegate.crds.schema import Node, openapi
from hivegate.errors import ConfigError

__all__ = ["apply_defaults", "cel_program", "json_schema", "validate", "validate_file"]

_KIND_NAMES = frozenset(k.kind for k in KINDS)


def validate(body: Mapping[str, Any]) -> list[str]:
    kind_name, api = body.get("kind"), body.get("apiVersion")
    name = (body.get("metadata") or {}).get("name", "?")
    where = f"{kind_name}/{name}"
    if kind_name not in _KIND_NAMES or not isinstance(api, str):
        return [f"{where}: not a kind of {GROUP}"]
    if api not in {f"{GROUP}/{v}" for v in SERVED}:
        return [f"{where}: apiVersion: {api} is not served (use {GROUP}/{SERVED[-1]})"]
    schema = openapi(kind_named(str(kind_name)).schema())
    value = apply_defaults(schema, copy.deepcopy(dict(body)))
    problems = [f"{where}: {p}" for p in _schema_problems(schema, value)]
    if problems:
        return problems
    return [f"{where}: {p}" for p in _rule_problems(schema, value, "")]


def validate_file(path: Path) -> list[str]:
    """The problems of every resource of a `KINDS` kind in a YAML file (other documents are skipped)."""
    try:
        bodies = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror or exc}"]
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        return [str(syntax_error(path, exc))]
    out = []
    for number, body in enumerate(bodies, start=1):
        if isinstance(body, Mapping) and body.get("kind") in _KIND_NAMES:
            out += [f"{path.name}:doc{number} {p}" for p in validate(body)]
    return out


def apply_defaults(schema: Node, value: Any) -> Any:
    """`value` with the schema's `default`s filled in where a key is missing from an object that is present."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in schema.get("properties", {}):
                    value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(schema["items"], v) for v in value]
    return value


def json_schema(schema: Node) -> Node:
    """A Kubernetes structural schema as plain JSON Schema: objects that do not preserve unknown fields reject them."""
    out: Node = {}
    for key, sub in schema.items():
        if key == "properties":
            out[key] = {k: json_schema(v) for k, v in sub.items()}
        elif key in ("items", "additionalProperties") and isinstance(sub, dict):
            out[key] = json_schema(sub)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [json_schema(v) for v in sub]
        elif not key.startswith("x-kubernetes-"):
            out[key] = sub
    closed = "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields")
    if schema.get("type") == "object" and "additionalProperties" not in schema and closed:
        out["additionalProperties"] = False
    return out


def _schema_problems(schema: Node, value: Any) -> Iterator[str]:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the test extra has it
        raise ConfigError("checking manifests needs jsonschema: pip install 'hivegate[test]'") from None
    validator = jsonschema.Draft7Validator(json_schema(schema))
    for error in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        path = _path(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(k for k in error.instance if k not in allowed):
                yield f"{_join(path, str(key))}: unknown field"
        else:
            yield f"{path or '<root>'}: {error.message}"


def _rule_problems(schema: Node, value: Any, path: str) -> Iterator[str]:
    for check in schema.get("x-kubernetes-validations", []):
        if not _holds(check["rule"], value):
            yield f"{path or '<root>'}: {check['message']}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            node = properties.get(key, extra if isinstance(extra, dict) else None)
            if node is not None:
                yield from _rule_problems(node, sub, _join(path, str(key)))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _rule_problems(schema["items"], item, f"{path}[{i}]")


def _holds(expression: str, value: Any) -> bool:
    from celpy.adapter import json_to_cel
    from celpy.evaluation import CELEvalError

    result = cel_program(expression).evaluate({"self": json_to_cel(value)})
    if isinstance(result, CELEvalError):
        return False  # the API server reports a rule that cannot be evaluated as a failed rule
    return bool(result)


@functools.lru_cache(maxsize=512)
def cel_program(expression: str) -> Any:
    """The compiled CEL program of a rule (a syntax error raises `celpy.CELParseError`)."""
    try:
        import celpy
    except ImportError:  # pragma: no cover - the test extra has it
        raise ConfigError("checking CEL rules needs cel-python: pip install 'hivegate[test]'") from None
    env = celpy.Environment()
    return env.program(env.compile(expression))


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, str(part))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
