"""Policies that name what does not exist: a tool, prompt or resource nobody advertises, a server that is not one.

Cedar cannot tell: `permit(…, resource == Tool::"deploy")` parses, validates, and never matches when the virtual MCP
server advertises `team_deploy`. `unknown_names` reads every entity a policy names (in its scope and its conditions,
`Tool::"x"`, `Prompt::"x"`, `Resource::"uri"`, `MCP::"server"`) and the names it compares `resource.name` and
`resource.backendName` with (`==`, `!=`), and reports each one that is not among the `known` names of its kind, with
the nearest known name: the same but for case, a prefixed or unprefixed form (`team_deploy` for `deploy`, and back),
or a close spelling. Only the kinds given in `known` are checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hivegate.authz.cedar import CompiledPolicy

__all__ = ["NameProblem", "named_in", "nearest", "unknown_names"]

# what a kind is called in a warning; `name` is `resource.name` (any kind), `backendName` `resource.backendName`
_KINDS = {"Tool": "tool", "Prompt": "prompt", "Resource": "resource", "MCP": "server", "name": "name",
          "backendName": "backend's own name"}  # fmt: skip
_SEPARATORS = "_.-/:"
_MAX_SUGGESTIONS = 3


@dataclass(frozen=True, slots=True)
class NameProblem:
    """A policy names `kind` `name`, which is not known; `suggestions` are the nearest known names."""

    policy_id: str
    index: int
    kind: str
    name: str
    suggestions: tuple[str, ...] = ()
    note: str = ""
    severity: Literal["warning"] = "warning"  # never an error: what is advertised changes while policies stay

    @property
    def message(self) -> str:
        if self.kind in ("name", "backendName"):
            shown, quote = f'"{self.name}" (compared with resource.{self.kind})', '"{}"'
        else:
            shown, quote = f'{self.kind}::"{self.name}"', self.kind + '::"{}"'
        text = f"{shown}: {self.note or f'no backend advertises this {_KINDS.get(self.kind, self.kind)}'}"
        if self.suggestions:
            text += f"; did you mean {' or '.join(quote.format(s) for s in self.suggestions)}?"
        return text

    def __str__(self) -> str:
        return f"warning: cedar.policies[{self.index}] ({self.policy_id}): {self.message}"


def named_in(est: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """`(kind, name)` for every entity a policy (in Cedar's JSON form) names, and for every string it compares
    `resource.name` or `resource.backendName` with (kind `name`, `backendName`)."""
    stack: list[Any] = [est.get("conditions"), est.get("resource"), est.get("action"), est.get("principal")]
    while stack:  # depth first, in the order the policy reads
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            if isinstance(node.get("type"), str) and isinstance(node.get("id"), str) and len(node) == 2:
                yield node["type"], node["id"]
                continue
            for op in ("==", "!="):
                compared = node.get(op)
                if isinstance(compared, dict):
                    yield from _compared_name(compared.get("left"), compared.get("right"))
                    yield from _compared_name(compared.get("right"), compared.get("left"))
            stack.extend(reversed(node.values()))


def _compared_name(attribute: Any, value: Any) -> Iterator[tuple[str, str]]:
    read = attribute.get(".") if isinstance(attribute, dict) else None
    literal = value.get("Value") if isinstance(value, dict) else None
    if not (isinstance(read, dict) and read.get("left") == {"Var": "resource"} and isinstance(literal, str)):
        return
    if read.get("attr") in ("name", "backendName"):
        yield str(read["attr"]), literal


def unknown_names(
    policies: Sequence[CompiledPolicy],
    known: Mapping[str, Collection[str]],
    *,
    exists: Callable[[str, str], bool] | None = None,
    notes: Mapping[str, str] | None = None,
) -> list[NameProblem]:
    """The names `policies` use that are not `known` (kind → names; kind `name` defaults to every tool, prompt and
    resource name). `exists(kind, name)` may know more (e.g. a URI a template expands to); `notes` (kind → text)
    replace "no backend advertises this <kind>" in the message. One problem per policy and name."""
    everything = {n for kind in ("Tool", "Prompt", "Resource") for n in known.get(kind, ())}
    sets = {kind: set(names) for kind, names in known.items()}
    if "name" not in sets and everything:
        sets["name"] = everything
    problems: list[NameProblem] = []
    for policy in policies:
        seen: set[tuple[str, str]] = set()
        for kind, name in named_in(policy.est):
            names = sets.get(kind)
            if names is None or name in names or (kind, name) in seen or (exists and exists(kind, name)):
                continue
            seen.add((kind, name))
            note = (notes or {}).get(kind, "")
            problems.append(NameProblem(policy.id, policy.entry, kind, name, nearest(name, names), note))
    return problems


def nearest(name: str, candidates: Collection[str]) -> tuple[str, ...]:
    """The known names `name` most likely meant: the same but for case; else the prefixed or unprefixed forms of it
    (`github_search` and `k8s_search` for `search`; `search` for `github_search`); else the closest spelling."""
    pool = sorted(candidates)
    folded = [c for c in pool if c.lower() == name.lower()]
    if folded:
        return tuple(folded[:_MAX_SUGGESTIONS])
    forms = [c for c in pool if _ends_with(c, name) or _ends_with(name, c)]
    if forms:
        return tuple(sorted(forms, key=len)[:_MAX_SUGGESTIONS])
    return tuple(difflib.get_close_matches(name, pool, n=1, cutoff=0.75))


def _ends_with(longer: str, tail: str) -> bool:
    """Whether `longer` is `tail` with a prefix ending in a separator (`team_` + `deploy`)."""
    cut = len(longer) - len(tail)
    return cut > 0 and longer.endswith(tail) and longer[cut - 1] in _SEPARATORS
