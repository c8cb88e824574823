"""Replay the gateway's audit trail under other policies (`hivegate authz replay`): which recorded decisions change.

Every audit line whose `metadata.extra.authorization` has a decision and an `input` (`observe.decision_record`) is
decided again with `gate.decide_call`, the gateway's own path, under the new config and, when one is given, the old
one (else the decision recorded in the line stands for the old side). A change is a flipped decision (allow ↔ deny);
the report counts them by target and by principal and keeps the first examples with the policies that decided each
side. Identical inputs are decided once (memoized on the input as recorded), so a log of repeated calls replays at
the cost of reading it.

Lines that are not audit events are passed over; audit events of lists (filtered per caller), of methods the gateway
never lets through, and decisions recorded without an input (older logs) are counted, not replayed. A line that is
not JSON, or an authorization record of the wrong shape, is a bad line: counted, its line number kept, never raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.decision import Decision
from hivegate.authz.entities import ACTION_RESOURCE_TYPE, ActionName, Origin
from hivegate.authz.explain import describe
from hivegate.authz.gate import decide_call
from hivegate.authz.policy_config import AuthzConfig
from hivegate.core.principal import Principal
from hivegate.errors import HivegateError

__all__ = ["BadLine", "Change", "Event", "Input", "Replayer", "Report", "parse_event"]

MAX_BAD_LINES_KEPT = 20


class BadLine(HivegateError, ValueError):
    """An audit line that cannot be replayed because it is malformed (the replay counts it; it never escapes)."""


@dataclass(frozen=True, slots=True)
class Input:
    """What a recorded decision was decided on (validated once per distinct input)."""

    server: str
    action: ActionName
    resource: str
    subject: str
    claims: Mapping[str, Any]
    arguments: Mapping[str, Any] | None
    arguments_complete: bool
    arguments_read: frozenset[str]  # when not complete: the arguments recorded whenever they were sent
    annotations: Mapping[str, Any] | None
    key: bytes  # the input as recorded: identical keys decide identically
    backend: str | None = None  # behind a virtual MCP server: the backend it comes from
    backend_name: str | None = None  # the backend's own name, when it differs from `resource`


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded decision and what it was decided on."""

    line: int
    allowed: bool
    policies: tuple[str, ...]  # as recorded: the names when the line has them, else the ids
    input: Input

    @property
    def subject(self) -> str:
        return self.input.subject

    @property
    def action(self) -> ActionName:
        return self.input.action

    @property
    def resource(self) -> str:
        return self.input.resource

    @property
    def target(self) -> str:
        return f'{ACTION_RESOURCE_TYPE[self.input.action]}::"{self.input.resource}"'


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a change: the decision and the policies that made it."""

    allowed: bool
    policies: tuple[str, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class Change:
    event: Event
    before: Side
    after: Side


@dataclass
class Report:
    """What a replay found. `changes` keeps the first `examples` changes; the counters count all of them."""

    lines: int = 0
    events: int = 0  # audit events
    replayed: int = 0
    changed: int = 0
    newly_allowed: int = 0
    newly_denied: int = 0
    lists: int = 0
    never_allowed: int = 0  # methods the gateway never lets through
    no_input: int = 0
    not_decided: int = 0  # audit events without an authorization decision
    other_lines: int = 0  # not audit events
    missing_arguments: int = 0  # replayed without argument values the policies read (not recorded)
    bad_lines: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    by_target: Counter[str] = field(default_factory=Counter)
    by_principal: Counter[str] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadLine(f"{what} must be an object")
    return value


def parse_event(line: int, doc: Any, known: dict[bytes, Input] | None = None) -> Event | str:
    """The decision event of an audit line, or why it is not replayed: `other`, `not_decided`, `lists`,
    `never_allowed`, `no_input`; raises `BadLine` when the line is malformed. `known` keeps the inputs already
    validated, by their recorded form."""
    if not isinstance(doc, dict) or doc.get("msg") != "audit_event":
        return "other"
    metadata = doc.get("metadata")
    extra = metadata.get("extra") if isinstance(metadata, dict) else None
    record = extra.get("authorization") if isinstance(extra, dict) else None
    if record is None:
        return "not_decided"
    record = _mapping(record, "metadata.extra.authorization")
    decision = record.get("decision")
    if decision == "filter":
        return "lists"
    if decision not in ("allow", "deny"):
        raise BadLine(f"authorization.decision must be allow, deny or filter, got {decision!r}")
    if record.get("why") == "method":
        return "never_allowed"
    found = record.get("input")
    if found is None:
        return "no_input"
    found = _mapping(found, "authorization.input")
    names = record.get("names", record.get("policies", []))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadLine("authorization.policies must be a list of strings")
    key = orjson.dumps(found)
    seen = known.get(key) if known is not None else None
    if seen is None:
        seen = _input(found, key)
        if known is not None:
            known[key] = seen
    return Event(line, decision == "allow", tuple(names), seen)


def _input(found: Mapping[str, Any], key: bytes) -> Input:
    action: Any = found.get("action")
    resource, server = found.get("resource"), found.get("server")
    if action not in ACTION_RESOURCE_TYPE:
        raise BadLine(f"authorization.input.action must be call_tool, get_prompt or read_resource, got {action!r}")
    if not isinstance(resource, str) or not isinstance(server, str):
        raise BadLine("authorization.input.resource and .server must be strings")
    principal = _mapping(found.get("principal"), "authorization.input.principal")
    subject = principal.get("sub")
    if not isinstance(subject, str):
        raise BadLine("authorization.input.principal.sub must be a string")
    claims = _mapping(principal.get("claims", {}), "authorization.input.principal.claims")
    arguments = found.get("arguments")
    if arguments is not None:
        arguments = _mapping(arguments, "authorization.input.arguments")
    annotations = found.get("annotations")
    if annotations is not None:
        annotations = _mapping(annotations, "authorization.input.annotations")
    backend, backend_name = found.get("backend"), found.get("backend_name")
    if not all(v is None or isinstance(v, str) for v in (backend, backend_name)):
        raise BadLine("authorization.input.backend and .backend_name must be strings")
    return Input(
        server,
        action,
        resource,
        subject,
        claims,
        arguments,
        found.get("arguments_complete") is True,
        _names(found.get("arguments_read")),
        annotations,
        key,
        backend,
        backend_name,
    )


def _names(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadLine("authorization.input.arguments_read must be a list of strings")
    return frozenset(value)


class _Decider:
    """One config's authorizers (one per server named in the trail) and its decisions, memoized by input."""

    def __init__(self, config: AuthzConfig) -> None:
        self._config = config
        self._authorizers: dict[str, CedarAuthorizer] = {}
        self._memo: dict[bytes, Decision] = {}

    def authorizer(self, server: str) -> CedarAuthorizer:
        found = self._authorizers.get(server)
        if found is None:
            found = self._authorizers[server] = CedarAuthorizer.from_config(self._config, server)
        return found

    def decide(self, event: Input) -> Decision:
        known = self._memo.get(event.key)
        if known is not None:
            return known
        claims = event.claims
        issuer = claims.get("iss")
        principal = Principal(event.subject, issuer if isinstance(issuer, str) else "", "jwt", claims)
        decision, _ = decide_call(
            self.authorizer(event.server),
            principal,
            event.action,
            event.resource,
            arguments=event.arguments,
            annotations=event.annotations,
            origin=_origin(event),
        )
        self._memo[event.key] = decision
        return decision


def _origin(event: Input) -> Origin | None:
    if event.backend is None and event.backend_name is None:
        return None
    return Origin(event.backend or event.server, event.backend_name or event.resource)


class Replayer:
    """Decides recorded events under `new` (and `old`, else the recorded decision) and builds the `Report`."""

    def __init__(self, new: AuthzConfig, old: AuthzConfig | None = None, *, examples: int = 10) -> None:
        self._new = _Decider(new)
        self._old = _Decider(old) if old is not None else None
        self._examples = examples
        self._inputs: dict[bytes, Input] = {}
        self.report = Report()

    def feed(self, lines: Iterable[bytes | str]) -> Report:
        """Replay every line (numbered from 1); returns the report so far."""
        report = self.report
        for number, raw in enumerate(lines, report.lines + 1):
            report.lines = number
            if not raw.strip():
                continue
            try:
                outcome = parse_event(number, orjson.loads(raw), self._inputs)
            except (orjson.JSONDecodeError, BadLine) as exc:
                self._bad(number, f"not JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc))
                continue
            if isinstance(outcome, str):
                if outcome != "other":
                    report.events += 1
                    setattr(report, outcome, getattr(report, outcome) + 1)
                else:
                    report.other_lines += 1
                continue
            report.events += 1
            self._replay(outcome)
        return report

    def _bad(self, number: int, why: str) -> None:
        self.report.bad_lines += 1
        if len(self.report.bad) < MAX_BAD_LINES_KEPT:
            self.report.bad.append((number, why))

    def _replay(self, event: Event) -> None:
        report = self.report
        report.replayed += 1
        seen = event.input
        after = self._new.decide(seen)
        if not seen.arguments_complete:
            read = self._new.authorizer(seen.server).argument_names
            if read is None or not read <= seen.arguments_read:
                report.missing_arguments += 1
        if self._old is not None:
            earlier = self._old.decide(seen)
            before = Side(earlier.allowed, earlier.named, describe(earlier, event.action))
        else:
            before = Side(event.allowed, event.policies, "as recorded")
        if before.allowed == after.allowed:
            return
        report.changed += 1
        if after.allowed:
            report.newly_allowed += 1
        else:
            report.newly_denied += 1
        report.by_target[event.target] += 1
        report.by_principal[event.subject] += 1
        if len(report.changes) < self._examples:
            now = Side(after.allowed, after.named, describe(after, event.action))
            report.changes.append(Change(event, before, now))
