"""Which policies can apply to a request, read from each policy's scope, so a decision evaluates only those.

Cedar's cost grows about 1 µs per policy per decision, so with hundreds of policies the set a request sees must be
small. A policy's scope (`action == ...`, `resource == Tool::"x"`, `resource is Tool`) is a conjunct evaluated
before its conditions; when the scope cannot hold for a request the policy neither applies nor errors. Leaving such
policies out therefore gives the same decision, the same deciding policy ids and the same errors as the full set.

The slicing is conservative: `action in ...` counts as `==` only when no `Action` entity has parents (no action
hierarchy); `resource in E` is treated as unconstrained (a hierarchy from `entities_json` may put any resource in E).
Principals are sliced too: `principal == Client::"u"` applies only to `u`, `principal in THVGroup::"g"` only to
members of `g`, as long as `entities_json` defines no `Client` or group entity (no principal hierarchy). A policy
whose first condition starts with `principal.claim_x.contains("v")` (the seeds' "allow by claim value") is left out
for a caller whose `claim_x` is a set without `"v"`: Cedar would evaluate that conjunct first and find it false.

A slice also knows which attribute names its policies read (`.attr`, `has attr`, `["attr"]`): Cedar can reach an
entity attribute or a context key no other way, so attributes nobody reads are left out of the request, which
saves most of Cedar's entity and context parsing (the dominant per-decision cost). `context` used as a whole value
keeps every context key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hivegate.authz.entities import ACTION_RESOURCE_TYPE

__all__ = ["Accessed", "PolicyIndex", "Scope", "accessed", "guard_of", "has_principal_hierarchy", "scope_of"]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a policy's scope constrains; `None` means unconstrained.

    `principal` is `None` (anyone), `("subject", id)`, `("group", id)` or `("never",)`.
    """

    actions: frozenset[str] | None
    resource_type: str | None
    resource_id: str | None
    principal: tuple[str, ...] | None = None
    guard: tuple[str, str] | None = None


def _action_ids(entities: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(str(e["id"]) for e in entities if e.get("type") == "Action")


def has_principal_hierarchy(entities: Sequence[Mapping[str, Any]], group_type: str) -> bool:
    """Whether `entities_json` can change who is in a group (it defines a `Client` or group entity)."""
    return any(str(e["uid"]["type"]) in {"Client", group_type} for e in entities)


def _principal(scope: Mapping[str, Any], group_type: str, hierarchy: bool) -> tuple[str, ...] | None:
    op, entity = scope.get("op"), scope.get("entity")
    if not isinstance(entity, Mapping) or "type" not in entity or op not in ("==", "in"):
        return None
    kind, ident = str(entity["type"]), str(entity["id"])
    if op == "==":
        return ("subject", ident) if kind == "Client" else ("never",)
    if hierarchy:
        return None
    if kind == "Client":
        return ("subject", ident)
    return ("group", ident) if kind == group_type else ("never",)


def guard_of(est: Mapping[str, Any]) -> tuple[str, str] | None:
    """`(attr, value)` when the policy's first condition starts with `principal.<attr>.contains("<value>")`."""
    conditions = est.get("conditions") or []
    if not conditions or conditions[0].get("kind") != "when":
        return None
    body = conditions[0].get("body")
    while isinstance(body, Mapping) and "&&" in body:
        body = body["&&"].get("left")
    call = body.get("contains") if isinstance(body, Mapping) else None
    if not isinstance(call, Mapping):
        return None
    left, right = call.get("left"), call.get("right")
    if not (isinstance(left, Mapping) and isinstance(right, Mapping)):
        return None
    member = left.get(".")
    value = right.get("Value")
    if isinstance(member, Mapping) and member.get("left") == {"Var": "principal"} and isinstance(value, str):
        return (str(member["attr"]), value)
    return None


def scope_of(
    est: Mapping[str, Any], *, action_hierarchy: bool, group_type: str = "THVGroup", principal_hierarchy: bool = True
) -> Scope:
    """The scope of one policy in Cedar's JSON (EST) form."""
    principal = _principal(est.get("principal", {}), group_type, principal_hierarchy)
    action = est.get("action", {})
    op = action.get("op")
    actions: frozenset[str] | None = None
    if op == "==":
        actions = _action_ids([action["entity"]])
    elif op == "in" and not action_hierarchy:
        actions = _action_ids(action["entities"] if "entities" in action else [action["entity"]])
    resource = est.get("resource", {})
    rop = resource.get("op")
    guard = guard_of(est)
    if rop == "==" and "entity" in resource:
        return Scope(actions, str(resource["entity"]["type"]), str(resource["entity"]["id"]), principal, guard)
    if rop == "is":
        return Scope(actions, str(resource["entity_type"]), None, principal, guard)
    return Scope(actions, None, None, principal, guard)


class _Bucket:
    """The policies of one `(action, resource name)`, split by what they ask of the principal."""

    __slots__ = ("anyone", "by_group", "by_subject")

    def __init__(self, entries: Sequence[tuple[int, Scope]]) -> None:
        self.anyone: list[int] = []
        self.by_subject: dict[str, list[int]] = {}
        self.by_group: dict[str, list[int]] = {}
        for pos, scope in entries:
            if scope.principal is None:
                self.anyone.append(pos)
            elif scope.principal[0] == "subject":
                self.by_subject.setdefault(scope.principal[1], []).append(pos)
            elif scope.principal[0] == "group":
                self.by_group.setdefault(scope.principal[1], []).append(pos)

    def positions(self, subject: str, groups: Sequence[str]) -> tuple[int, ...]:
        found = self.anyone + self.by_subject.get(subject, [])
        for group in groups:
            found += self.by_group.get(group, [])
        return tuple(sorted(set(found)))


class PolicyIndex:
    """Maps `(action, resource name, subject, groups)` to the positions of the policies whose scope can hold."""

    def __init__(self, scopes: Sequence[Scope]) -> None:
        self._generic: dict[str, _Bucket] = {}
        self._exact: dict[tuple[str, str], _Bucket] = {}
        self._guards = {pos: s.guard for pos, s in enumerate(scopes) if s.guard is not None}
        for action, rtype in ACTION_RESOURCE_TYPE.items():
            applicable = [
                (pos, s)
                for pos, s in enumerate(scopes)
                if (s.actions is None or action in s.actions) and s.resource_type in (None, rtype)
            ]
            self._generic[action] = _Bucket([(pos, s) for pos, s in applicable if s.resource_id is None])
            for name in {s.resource_id for _, s in applicable if s.resource_id is not None}:
                self._exact[(action, name)] = _Bucket(
                    [(pos, s) for pos, s in applicable if s.resource_id is None or s.resource_id == name]
                )

    def positions_for(
        self, action: str, name: str, subject: str, groups: Sequence[str], attrs: Mapping[str, Any]
    ) -> tuple[int, ...]:
        """Positions (in config order) of the policies that can apply to this request; `attrs` are the principal's."""
        bucket = self._exact.get((action, name)) or self._generic.get(action)
        if bucket is None:
            return ()
        found = bucket.positions(subject, groups)
        if not self._guards:
            return found
        return tuple(pos for pos in found if pos not in self._guards or _may_hold(self._guards[pos], attrs))


def _may_hold(guard: tuple[str, str], attrs: Mapping[str, Any]) -> bool:
    value = attrs.get(guard[0])
    return not isinstance(value, list) or guard[1] in value


@dataclass(frozen=True, slots=True)
class Accessed:
    """Attribute names a set of policies reads: on any expression, and on `context` (`None`: the whole context)."""

    attrs: frozenset[str]
    context: frozenset[str] | None


def accessed(ests: Sequence[Mapping[str, Any]]) -> Accessed:
    """Every attribute name the policies read; `context` is `None` when some policy uses it as a whole."""
    attrs: set[str] = set()
    context: set[str] | None = set()
    stack: list[Any] = [c for est in ests for c in est.get("conditions", [])]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for op in (".", "has"):
                inner = node.get(op)
                if isinstance(inner, dict) and "attr" in inner:
                    attrs.add(str(inner["attr"]))
                    if inner.get("left") == {"Var": "context"}:
                        if context is not None:
                            context.add(str(inner["attr"]))
                        node = {k: v for k, v in inner.items() if k != "left"}
                        break
            if node == {"Var": "context"}:
                context = None
            stack.extend(node.values())
    return Accessed(frozenset(attrs), None if context is None else frozenset(context))
