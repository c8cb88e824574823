"""Cedar decisions with `cedarpy` (the Rust cedar-policy bindings); the only module that imports it.

Policy text is parsed once per load. Each policy gets the id `policy<N>` (N counts policies in config order, as if the
texts were concatenated); its `@id("…")` annotation, if any, is its name in decisions (`Decision.names`). A decision
evaluates only the slice of policies that can apply to its caller, action and resource (see `slicing`), with only the
attributes those policies read; each slice's `PolicySet` is compiled on first use and cached. The answer is the full
set's (pinned by a property test) at a fraction of the cost. Callers are cached by subject and exact claims, with their
parsed entities, resolved slices and their last 256 decisions, keyed by exactly what the deciding slice reads of the
resource and the context (a repeated call costs a lookup instead of ~30 µs in the engine).

Default deny; a request Cedar cannot evaluate at all is denied with the error. A policy that errors while it is
evaluated (an attribute the request lacks, a comparison of values of different types) is listed in `errors` and:

- a `permit` that errors grants nothing (Cedar skips it), so a `principal.claim_roles.contains(...)` policy does not
  lock out callers whose token lacks `roles`, nor lets them in;
- a `forbid` that errors denies (fail closed; Cedar alone would skip it, and the permits would win). Otherwise an
  argument of another type than its guard expects (`"500"` or `500.5` where `resource.arg_a > 100` compares a
  number) would switch the guard off while the backend still reads the value it forbids. The deciding policies
  (`reasons`) are then the forbids that errored. Guard an optional argument with `has`: `resource has arg_a &&
  resource.arg_a > 100`. A list filter has no arguments: there a forbid that reads one does not hide the item by
  erroring (each call is decided with its arguments).

Over 400 lines on purpose: the only module that may import the Cedar engine (ruff bans it elsewhere), so every use
of the engine stays behind one reviewable boundary.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import cedarpy  # the one module allowed to import the Cedar engine
import orjson
from cedarpy import _internal

from hivegate.authz.decision import Decision
from hivegate.authz.entities import (
    ACTION_RESOURCE_TYPE,
    ANNOTATION_HINTS,
    ActionName,
    EntityError,
    Origin,
    argument_attrs,
    backend_entity,
    entity_key,
    has_action_hierarchy,
    merge_entity,
    principal_entity,
    request_context,
    resource_entity,
)
from hivegate.authz.policy_config import AuthzConfig
from hivegate.authz.slicing import PolicyIndex, accessed, has_principal_hierarchy, scope_of
from hivegate.authz.teach import END_OF_INPUT, syntax_hint
from hivegate.core.principal import Principal
from hivegate.errors import ConfigError

__all__ = [
    "MAX_CACHED_CALLERS",
    "MAX_CACHED_SLICES",
    "MAX_DECISIONS_PER_CALLER",
    "MAX_SLICES_PER_CALLER",
    "CedarAuthorizer",
    "CompiledPolicy",
    "compile_policies",
    "validate_against_schema",
]


class CompiledPolicy(NamedTuple):
    """One parsed policy: its id in decisions, its Cedar JSON (EST) form, and `entry`, its index in `cedar.policies`."""

    id: str
    est: dict[str, Any]
    entry: int


_LOCATE_LIMIT = 4096  # longer policy texts: the position comes from the quoted token only
MAX_CACHED_SLICES = 4096
MAX_CACHED_CALLERS = 1024
MAX_SLICES_PER_CALLER = 1024
MAX_DECISIONS_PER_CALLER = 256
_MEMO_KEY_LIMIT = 1024  # bytes of resource attributes and context a remembered decision may be keyed by
# The public `cedarpy.is_authorized_batch` re-encodes the context with `json`, decodes the answer and wraps it in
# objects: about 19 µs of a 35 µs decision here. We call the extension it wraps with pre-encoded JSON instead (same
# arguments, same JSON answer); `tests/unit/authz/test_authz_engine.py` pins the answer's shape.
_is_authorized_batch = _internal.is_authorized_batch
_TICKED = re.compile(r"`([^`]+)`")
_ERRED = re.compile(r"error while evaluating policy `([^`]+)`")  # how Cedar's diagnostics name a failed policy


def compile_policies(texts: Sequence[str]) -> list[CompiledPolicy]:
    """Parse each policy text to Cedar's JSON form; `ConfigError` names the policy index, line and column."""
    compiled: list[CompiledPolicy] = []
    for index, text in enumerate(texts):
        try:
            doc = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as exc:
            message = str(exc).splitlines()[0] if str(exc) else "syntax error"
            line, column = _end(text) if message == END_OF_INPUT else _locate(text, message)
            hint = syntax_hint(text, message)
            raise ConfigError(f"cedar.policies[{index}], line {line}, column {column}: {message}{hint}") from exc
        if doc.get("templates"):
            raise ConfigError(f"cedar.policies[{index}]: policy templates (?principal/?resource) are not supported")
        static = doc.get("staticPolicies", {})
        if not static:
            raise ConfigError(f"cedar.policies[{index}]: contains no policy")
        for key in sorted(static, key=lambda k: int(k.removeprefix("policy"))):
            compiled.append(CompiledPolicy(f"policy{len(compiled)}", static[key], index))
    return compiled


def _end(text: str) -> tuple[int, int]:
    """The position just after the last character of `text` that is not white space."""
    offset = len(text.rstrip())
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _locate(text: str, message: str) -> tuple[int, int]:
    """Best-effort position of a parse error: where the prefixes of `text` stop failing with the same message."""

    def same_error(k: int) -> bool:
        try:
            cedarpy.policies_to_json_str(text[:k])
        except ValueError as exc:
            return str(exc).splitlines()[0] == message if str(exc) else False
        return False

    end = len(text)
    if end <= _LOCATE_LIMIT:
        while end > 0 and same_error(end - 1):
            end -= 1
    offset = max(end - 1, 0)
    ticked = _TICKED.search(message)
    token = ticked.group(1) if ticked else message.rsplit(": ", 1)[-1] if ": " in message else ""
    if token and (found := text.rfind(token, 0, end)) >= 0:
        offset = found
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _policy_set(policies: Sequence[CompiledPolicy]) -> cedarpy.PolicySet:
    doc = {"staticPolicies": {p.id: p.est for p in policies}, "templates": {}, "templateLinks": []}
    return cedarpy.PolicySet.from_json_str(json.dumps(doc))


def validate_against_schema(policies: Sequence[CompiledPolicy], schema_text: str) -> list[tuple[str, str]]:
    """Validate compiled policies against a Cedar schema; returns `(policy id, validator message)` pairs."""
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        raise ConfigError(f"authz schema: {exc}") from exc
    problems = []
    for policy in policies:
        one = json.dumps({"staticPolicies": {"policy0": policy.est}, "templates": {}, "templateLinks": []})
        result = cedarpy.validate_policies(cedarpy.policies_from_json_str(one), schema)
        problems += [(policy.id, e.error.replace("for policy `policy0`, ", "")) for e in result.errors]
    return problems


class _Slice(NamedTuple):
    """A compiled policy set plus the attribute names its policies read (`None`: keep everything)."""

    policies: cedarpy.PolicySet
    attrs: frozenset[str] | None
    context: frozenset[str] | None


def _keep(attrs: Mapping[str, Any], names: frozenset[str] | None) -> dict[str, Any]:
    if names is None:
        return dict(attrs)
    return {k: v for k, v in attrs.items() if k in names}


def _pruned(entity: dict[str, Any], names: frozenset[str] | None) -> dict[str, Any]:
    if names is None:
        return entity
    return {"uid": entity["uid"], "attrs": _keep(entity["attrs"], names), "parents": entity["parents"]}


def _union(sets: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    if any(names is None for names in sets):
        return None
    return frozenset().union(*(names for names in sets if names is not None))


class _Caller:
    """A principal's entity, its parsed Cedar entities per set of kept attributes (with `entities_json`), the slice
    each `(action, name)` it asked about resolved to, and recent decisions (all of it fixed by the exact claims; a
    policy reload makes a new authorizer, so nothing outlives the policies it was decided by)."""

    __slots__ = ("decisions", "handles", "slices", "who")

    def __init__(self, who: dict[str, Any]) -> None:
        self.who = who
        self.handles: dict[frozenset[str] | None, Any] = {}
        self.slices: dict[tuple[str, str], _Slice | None] = {}
        self.decisions: dict[tuple[str, str, bytes, bool], Decision] = {}


class CedarAuthorizer:
    """Decides MCP requests for one server against a compiled Cedar policy set.

    `slicing=False` evaluates every decision against the full set with every attribute (the reference behaviour,
    used by the property test and the benchmark).
    """

    def __init__(self, cfg: AuthzConfig, server_name: str, *, slicing: bool = True) -> None:
        cedar = cfg.cedar
        self._server = server_name
        self._group_claim = cedar.group_claim_name
        self._role_claim = cedar.role_claim_name
        self._group_type = cedar.group_entity_type
        self._policies = compile_policies(cedar.policies)
        self._forbids = frozenset(p.id for p in self._policies if p.est.get("effect") == "forbid")
        # forbids that read a tool argument: a list (which has no arguments) is not filtered by their errors
        self._argument_forbids = frozenset(
            p.id for p in self._policies
            if p.id in self._forbids and any(a.startswith("arg_") for a in accessed([p.est]).attrs)
        )  # fmt: skip
        self.reads_annotations = any(hint in text for text in cedar.policies for hint in ANNOTATION_HINTS)
        # a policy's `@id("…")` annotation names it in decisions (beside its `policy<N>` id)
        self._labels = {p.id: str(p.est["annotations"]["id"]) for p in self._policies
                        if isinstance(p.est.get("annotations"), dict) and "id" in p.est["annotations"]}  # fmt: skip
        reads = accessed([p.est for p in self._policies])
        self.argument_names: frozenset[str] | None = (
            None if reads.context is None else frozenset(a[4:] for a in reads.attrs if a.startswith("arg_"))
        )  # the arguments some policy reads (None: any, `context` is used whole); for the audit trail
        self.required_scopes = cfg.required_scopes  # loaded and reloaded with the policies; checked by `McpGate`
        base: list[dict[str, Any]] = json.loads(cedar.entities_json)
        self._base_map = {entity_key(e): e for e in base}
        try:
            self._base = cedarpy.Entities.from_json_str(cedar.entities_json) if base else None
        except ValueError as exc:
            raise ConfigError(f"cedar.entities_json: {exc}") from exc
        group_type = cedar.group_entity_type
        scopes = [
            scope_of(
                p.est,
                action_hierarchy=has_action_hierarchy(base),
                group_type=group_type,
                principal_hierarchy=has_principal_hierarchy(base, group_type),
            )
            for p in self._policies
        ]
        self._index = PolicyIndex(scopes)
        self._slicing = slicing
        self._full = _Slice(_policy_set(self._policies), None, None)
        self._slices: dict[tuple[int, ...], _Slice] = {}
        self._callers: dict[tuple[str, bytes], _Caller] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: AuthzConfig, server_name: str, *, slicing: bool = True) -> CedarAuthorizer:
        """Compile `cfg` for the MCP server `server_name` (the `MCP::"<server>"` parent of every resource)."""
        return cls(cfg, server_name, slicing=slicing)

    @property
    def policy_count(self) -> int:
        """How many policies were loaded."""
        return len(self._policies)

    @property
    def policies(self) -> tuple[CompiledPolicy, ...]:
        """The compiled policies, in config order."""
        return tuple(self._policies)

    @property
    def server_name(self) -> str:
        """The server every resource is a child of (`MCP::"<server>"`)."""
        return self._server

    def name_of(self, policy_id: str) -> str:
        """A policy's `@id` annotation, or its id when it has none."""
        return self._labels.get(policy_id, policy_id)

    def _named(self, allowed: bool, reasons: tuple[str, ...], errors: tuple[str, ...]) -> Decision:
        names = tuple(self._labels.get(r, r) for r in reasons) if self._labels else ()
        return Decision(allowed, reasons, errors, names)

    def entity_set(
        self,
        principal: Principal,
        action: ActionName,
        name: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        annotations: Mapping[str, Any] | None = None,
        origin: Origin | None = None,
    ) -> dict[str, Any]:
        """The whole request as Cedar sees it before slicing (principal, resource and `entities_json` entities,
        the context), for a debug log line: built from claims and arguments, never from a token."""
        try:
            args = argument_attrs(arguments)
        except EntityError as exc:
            return {"error": str(exc)}
        who = self._principal_entity(principal)
        what = self._resource(action, name, origin, args=args, annotations=annotations)
        entities = dict(self._base_map)
        for e in (who, what, *self._backends([origin])):
            key = entity_key(e)
            entities[key] = merge_entity(entities[key], e) if key in entities else e
        return {
            "principal": who["uid"],
            "action": {"type": "Action", "id": action},
            "resource": what["uid"],
            "context": request_context(who["attrs"], args),
            "entities": list(entities.values()),
        }

    def policy_ids_for(self, principal: Principal, action: ActionName, name: str) -> tuple[str, ...]:
        """The policies a decision evaluates (all of them when slicing is off)."""
        if not self._slicing:
            return tuple(p.id for p in self._policies)
        who = self._principal_entity(principal)
        groups = [p["id"] for p in who["parents"]]
        positions = self._index.positions_for(action, name, principal.subject, groups, who["attrs"])
        return tuple(self._policies[i].id for i in positions)

    def _slice_for(self, action: ActionName, name: str, caller: _Caller) -> _Slice | None:
        if not self._slicing:
            return self._full
        memo = caller.slices
        if (action, name) in memo:
            return memo[(action, name)]
        if len(memo) >= MAX_SLICES_PER_CALLER:
            memo.clear()
        memo[(action, name)] = found = self._find_slice(action, name, caller.who)
        return found

    def _find_slice(self, action: ActionName, name: str, who: dict[str, Any]) -> _Slice | None:
        groups = [p["id"] for p in who["parents"]]
        positions = self._index.positions_for(action, name, who["uid"]["id"], groups, who["attrs"])
        if not positions:
            return None
        found = self._slices.get(positions)
        if found is None:
            chosen = [self._policies[i] for i in positions]
            reads = accessed([p.est for p in chosen])
            found = _Slice(_policy_set(chosen), reads.attrs, reads.context)
            with self._lock:
                if len(self._slices) >= MAX_CACHED_SLICES:
                    self._slices.pop(next(iter(self._slices)))
                self._slices[positions] = found
        return found

    def decide(
        self,
        principal: Principal,
        action: ActionName,
        name: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        annotations: Mapping[str, Any] | None = None,
        listing: bool = False,
        origin: Origin | None = None,
    ) -> Decision:
        """Decide `action` on the tool, prompt or resource `name`; never raises, denies what it cannot evaluate.
        `listing`: decided for a list (no arguments), as `filter` decides (see `_evaluate`). `origin`: the backend
        it comes from behind a virtual MCP server (default: this server, under `name`)."""
        if action not in ACTION_RESOURCE_TYPE:
            return Decision(False, errors=(f"unknown action {action!r}",))
        try:
            args = argument_attrs(arguments)
        except EntityError as exc:
            return Decision(False, errors=(str(exc),))
        caller = self._caller(principal)
        who = caller.who
        chosen = self._slice_for(action, name, caller)
        if chosen is None:
            return Decision(False)
        what = self._resource(action, name, origin, args=args, annotations=annotations)
        resource = _pruned(what, chosen.attrs)
        context = _keep(request_context(who["attrs"], args), chosen.context)
        memo = self._memo_key(action, name, resource, context, listing)
        if memo is not None and (known := caller.decisions.get(memo)) is not None:
            return known
        request = {
            "principal": who["uid"],
            "action": {"type": "Action", "id": action},
            "resource": what["uid"],
            "context": context,
        }
        try:
            entities = self._entities(caller, chosen.attrs, [resource, *self._backends([origin])])
        except Exception as exc:  # any failure to evaluate is a deny, never a crash
            return Decision(False, errors=(f"cedar evaluation failed: {exc}",))
        decision = self._evaluate([request], chosen.policies, entities, listing=listing)[0]
        if memo is not None:
            if len(caller.decisions) >= MAX_DECISIONS_PER_CALLER:
                caller.decisions.pop(next(iter(caller.decisions)))
            caller.decisions[memo] = decision
        return decision

    def _resource(
        self,
        action: ActionName,
        name: str,
        origin: Origin | None,
        *,
        args: Mapping[str, Any] | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        if origin is None:
            return resource_entity(action, name, self._server, args=args, annotations=annotations)
        return resource_entity(
            action, name, origin.backend, args=args, annotations=annotations, backend_name=origin.name
        )

    def _backends(self, origins: Sequence[Origin | None]) -> list[dict[str, Any]]:
        """The `MCP::"<backend>"` entities of `origins`, each a child of this (virtual) server."""
        backends = dict.fromkeys(o.backend for o in origins if o is not None and o.backend != self._server)
        return [backend_entity(backend, self._server) for backend in backends]

    def _memo_key(
        self, action: str, name: str, resource: Mapping[str, Any], context: Mapping[str, Any], listing: bool
    ) -> tuple[str, str, bytes, bool] | None:
        """What a decision depends on beyond the caller (whose entity is fixed by its exact claims): the resource's
        parents, and its attributes and the context as far as the deciding slice reads them. None (not remembered)
        without slicing, or when they are large (a key must stay small)."""
        if not self._slicing:
            return None
        try:
            reads = orjson.dumps((resource["parents"], resource["attrs"], context), option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        return (action, name, reads, listing) if len(reads) <= _MEMO_KEY_LIMIT else None

    def filter(
        self,
        principal: Principal,
        action: ActionName,
        items: Sequence[tuple[str, Mapping[str, Any] | None]],
        origins: Sequence[Origin | None] | None = None,
    ) -> list[bool]:
        """For list filtering: whether each `(name, annotations)` item may be used; `origins` (aligned with
        `items`) place each behind a virtual MCP server.

        The entities (caller plus every item) are parsed once; each distinct policy slice is one batch call.
        """
        placed = list(origins) if origins is not None else [None] * len(items)
        if action not in ACTION_RESOURCE_TYPE:
            return [False] * len(items)
        caller = self._caller(principal)
        who = caller.who
        allowed = [False] * len(items)
        chosen_for: dict[int, _Slice] = {}
        leftovers: list[int] = []
        seen: set[str] = set()
        for i, (name, _) in enumerate(items):
            chosen = self._slice_for(action, name, caller)
            if chosen is None:
                continue
            if name in seen:  # the same name twice would be a duplicate entity: decided on its own
                leftovers.append(i)
                continue
            seen.add(name)
            chosen_for[i] = chosen
        if chosen_for:
            slices = list({id(c): c for c in chosen_for.values()}.values())
            attrs = _union([c.attrs for c in slices])
            context = _keep(request_context(who["attrs"], {}), _union([c.context for c in slices]))
            resources = [
                _pruned(self._resource(action, items[i][0], placed[i], annotations=items[i][1]), attrs)
                for i in chosen_for
            ]
            try:
                entities = self._entities(caller, attrs, [*resources, *self._backends(placed)])
            except Exception:  # any failure to evaluate is a deny, never a crash
                return allowed
            batches: dict[int, tuple[_Slice, list[int], list[dict[str, Any]]]] = {}
            for (i, chosen), resource in zip(chosen_for.items(), resources, strict=True):
                _, indices, requests = batches.setdefault(id(chosen), (chosen, [], []))
                indices.append(i)
                requests.append(
                    {
                        "principal": who["uid"],
                        "action": {"type": "Action", "id": action},
                        "resource": resource["uid"],
                        "context": context,
                    }
                )
            for chosen, indices, requests in batches.values():
                decided = self._evaluate(requests, chosen.policies, entities, listing=True)
                for i, decision in zip(indices, decided, strict=True):
                    allowed[i] = decision.allowed
        for i in leftovers:
            name, annotations = items[i]
            allowed[i] = self.decide(
                principal, action, name, annotations=annotations, listing=True, origin=placed[i]
            ).allowed
        return allowed

    def _principal_entity(self, principal: Principal) -> dict[str, Any]:
        return principal_entity(
            principal,
            group_claim_name=self._group_claim,
            role_claim_name=self._role_claim,
            group_entity_type=self._group_type,
        )

    def _caller(self, principal: Principal) -> _Caller:
        """The principal's entity, cached by subject and exact claims (tokens repeat), with its parsed handles."""
        if not self._slicing:
            return _Caller(self._principal_entity(principal))
        try:
            key = (principal.subject, orjson.dumps(principal.claims, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # claims orjson cannot encode: not cached
            return _Caller(self._principal_entity(principal))
        found = self._callers.get(key)
        if found is None:
            found = _Caller(self._principal_entity(principal))
            with self._lock:
                if len(self._callers) >= MAX_CACHED_CALLERS:
                    self._callers.pop(next(iter(self._callers)), None)
                self._callers[key] = found
        return found

    def _entities(self, caller: _Caller, attrs: frozenset[str] | None, others: list[dict[str, Any]]) -> Any:
        """The entities of a request: a parsed handle (principal cached, resources added) or a JSON document."""
        who = _pruned(caller.who, attrs)
        if self._slicing and not any(entity_key(e) in self._base_map for e in (who, *others)):
            handle = caller.handles.get(attrs)
            if handle is None:
                principal_json = orjson.dumps([who]).decode()
                if self._base is None:
                    handle = _internal.Entities.from_json_str(principal_json, None)
                else:
                    handle = self._base._inner.with_added_json_str(principal_json, None)
                if len(caller.handles) >= MAX_SLICES_PER_CALLER:
                    caller.handles.clear()
                caller.handles[attrs] = handle
            return handle.with_added_json_str(orjson.dumps(others).decode(), None)
        request_entities = [who, *others]
        if self._base is None:
            return orjson.dumps(request_entities).decode()
        if not any(entity_key(e) in self._base_map for e in request_entities):
            return self._base._inner.with_added_json_str(orjson.dumps(request_entities).decode(), None)
        merged = dict(self._base_map)
        for e in request_entities:
            key = entity_key(e)
            merged[key] = merge_entity(merged[key], e) if key in merged else e
        return orjson.dumps(list(merged.values())).decode()

    def _forbids_in(self, errors: tuple[str, ...]) -> tuple[str, ...]:
        """The ids of the `forbid` policies named in Cedar's evaluation errors."""
        named = (_ERRED.match(error) for error in errors)
        return tuple(m.group(1) for m in named if m is not None and m.group(1) in self._forbids)

    def _evaluate(
        self, requests: list[dict[str, Any]], policies: cedarpy.PolicySet, entities: Any, *, listing: bool = False
    ) -> list[Decision]:
        """Cedar's decisions, with a `forbid` that errors counting as a deny (fail closed). When `listing` (a list
        filter: there are no arguments to read) a `forbid` that reads a tool argument does not hide the item by
        erroring: each call is decided, strictly, with its arguments."""
        try:
            # an empty context is left out: Cedar reads that as `{}` and skips parsing it (~5 µs)
            encoded = [
                {**request, "context": orjson.dumps(request["context"]).decode()}
                if request["context"]
                else {k: v for k, v in request.items() if k != "context"}
                for request in requests
            ]
            results = [
                orjson.loads(answer) for answer in _is_authorized_batch(encoded, policies, entities, None, False)
            ]
        except Exception as exc:  # any failure to evaluate is a deny, never a crash
            return [Decision(False, errors=(f"cedar evaluation failed: {exc}",))] * len(requests)
        decisions = []
        for result in results:
            diagnostics = result.get("diagnostics", {})
            errors = tuple(diagnostics.get("errors", ()))
            failed_forbids = self._forbids_in(errors) if errors else ()
            if listing:
                failed_forbids = tuple(f for f in failed_forbids if f not in self._argument_forbids)
            if failed_forbids:
                decisions.append(self._named(False, failed_forbids, errors))
            elif result.get("decision") == "Allow":
                decisions.append(self._named(True, tuple(diagnostics.get("reason", ())), errors))
            elif result.get("decision") == "Deny":
                decisions.append(self._named(False, tuple(diagnostics.get("reason", ())), errors))
            else:
                decisions.append(Decision(False, errors=errors or ("cedar returned no decision",)))
        return decisions
