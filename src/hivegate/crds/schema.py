"""The little language the CRD schemas are written in: OpenAPI v3 nodes as Kubernetes' structural schemas take them.

Each helper returns one schema node (a plain dict, as it appears in the CRD's `openAPIV3Schema`). Two keys are
hivegate's own and never reach a CRD: `x-hivegate-local-only` lists the keys the readers accept from a file on one
machine but a cluster must not (a secret's value or an environment variable's name in place of a Secret reference),
and `x-hivegate-opaque` marks a subtree the schema types loosely because a reader checks it (`opaque`). `openapi()`
drops them; the drift test (`tests/unit/crds/test_crd_drift.py`) reads them.

Cross-field rules are CEL expressions (`x-kubernetes-validations`) evaluated by the API server with `self` bound to
the node that carries them; `one_block_per_type` writes the usual "the block named by `type`, and no other" rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "LOCAL_ONLY",
    "OPAQUE",
    "Node",
    "anything",
    "array",
    "boolean",
    "int_or_string",
    "integer",
    "map_of",
    "obj",
    "one_block_per_type",
    "opaque",
    "openapi",
    "rule",
    "string",
]

Node = dict[str, Any]
LOCAL_ONLY = "x-hivegate-local-only"
OPAQUE = "x-hivegate-opaque"


def _node(kind: str | None, description: str, keywords: Mapping[str, Any]) -> Node:
    """A node of type `kind` with the OpenAPI `keywords` that are set (not None)."""
    node: Node = {} if kind is None else {"type": kind}
    node.update((k, v) for k, v in keywords.items() if v is not None)
    if description:
        node["description"] = description
    return node


def string(
    description: str = "",
    *,
    enum: Sequence[str] = (),
    default: str | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    fmt: str | None = None,
) -> Node:
    keywords = {"enum": list(enum) or None, "default": default, "pattern": pattern, "minLength": min_length,
                "maxLength": max_length, "format": fmt}  # fmt: skip
    return _node("string", description, keywords)


def integer(
    description: str = "",
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
    fmt: str = "int32",
) -> Node:
    return _node("integer", description, {"format": fmt, "minimum": minimum, "maximum": maximum, "default": default})


def boolean(description: str = "", *, default: bool | None = None) -> Node:
    return _node("boolean", description, {"default": default})


def int_or_string(description: str = "") -> Node:
    """A number or a string (`x-kubernetes-int-or-string`), as Kubernetes quantities and ports are."""
    keywords = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    return _node(None, description, keywords)


def array(items: Node, description: str = "", *, min_items: int | None = None, max_items: int | None = None) -> Node:
    return _node("array", description, {"items": items, "minItems": min_items, "maxItems": max_items})


def map_of(values: Node, description: str = "") -> Node:
    """An object with keys of the user's choosing (header names, backend names)."""
    return _node("object", description, {"additionalProperties": values})


def rule(expression: str, message: str) -> Node:
    return {"rule": expression, "message": message}


def obj(
    description: str,
    properties: Mapping[str, Node],
    *,
    required: Iterable[str] = (),
    rules: Iterable[Node] = (),
    local_only: Iterable[str] = (),
) -> Node:
    """An object whose keys are `properties`; any other key is pruned (and `kubectl apply` rejects it)."""
    required = list(required)
    missing = [key for key in required if key not in properties]
    if missing:
        raise ValueError(f"required keys {missing} are not properties")
    keywords = {"properties": dict(sorted(properties.items())), "required": required or None,
                "x-kubernetes-validations": list(rules) or None, LOCAL_ONLY: sorted(local_only) or None}  # fmt: skip
    return _node("object", description, keywords)


def opaque(description: str) -> Node:
    """An object kept as given (`x-kubernetes-preserve-unknown-fields`): a pod template, or a section the readers
    check themselves (a vMCP config section, a setting hivegate rejects as not supported yet)."""
    return _node("object", description, {"x-kubernetes-preserve-unknown-fields": True, OPAQUE: True})


def anything(description: str) -> Node:
    """A value of any type, kept as given: an older field that was a string and is now an object (`groupRef`)."""
    return _node(None, description, {"x-kubernetes-preserve-unknown-fields": True, OPAQUE: True})


def one_block_per_type(blocks: Iterable[str], *, field: str = "type") -> list[Node]:
    """The rules "block `b` is set when `type` is `b`, and only then", one per block."""
    return [
        rule(
            f"self.{field} == '{block}' ? has(self.{block}) : !has(self.{block})",
            f"{block} must be set when {field} is '{block}', and only then",
        )
        for block in blocks
    ]


def openapi(node: Any) -> Any:
    """`node` as it goes into a CRD: hivegate's own keys dropped."""
    if isinstance(node, dict):
        return {k: openapi(v) for k, v in node.items() if k not in (LOCAL_ONLY, OPAQUE)}
    if isinstance(node, list):
        return [openapi(v) for v in node]
    return node
