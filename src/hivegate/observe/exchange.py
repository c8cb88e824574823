"""What happened in one HTTP exchange, for the audit trail, metrics, traces and logs.

The gateway opens an `Exchange` per HTTP request (request id, source, timing) and hands it down in the ASGI scope;
authentication sets the principal; the MCP fronts add one `McpCall` per JSON-RPC request or notification they
handle and settle it when its answer is known. When the HTTP exchange ends, the gateway passes the exchange to
every `Observer`. Observers must not raise and must not block (they run on the event loop). A call answered after
its HTTP exchange ended (the legacy SSE transport answers on the client's event stream) is `defer`red: the exchange
is then reported when that answer is known.

When tracing is on, the gateway also gives the exchange a `CallTracer` and the caller's W3C trace headers: each call
gets its trace and span ids as it is recorded (spans are only made when the exchange ends, but the backend must be
told its parent before that), and a sampled request's `params._meta.traceparent` is set to the gateway's `backend`
span before the fronts forward the message (the reverse proxy sends it as a `traceparent` header instead).
"""

from __future__ import annotations

import contextvars
import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

from hivegate.core.jsonrpc import Message, RequestId
from hivegate.core.principal import Principal
from hivegate.observe.tracecontext import format_traceparent

if TYPE_CHECKING:
    from hivegate.authz.decision import DecisionInput

__all__ = [
    "EXCHANGE_KEY",
    "CallTracer",
    "Exchange",
    "McpCall",
    "Observer",
    "Outcome",
    "TraceIds",
    "TraceMeta",
    "carries_trace_context",
    "current_request_id",
    "exchange_of",
]

EXCHANGE_KEY: Final = "hivegate.exchange"
Outcome = Literal["success", "failure", "error", "denied", "application_error"]

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hivegate_request_id", default=None)

_TRACE_KEYS: Final = ("traceparent", "tracestate")  # W3C Trace Context in `_meta` (MCP SEP-414)

# method → (target type, params key naming the target)
_TARGETS: Mapping[str, tuple[str, str]] = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
    "resources/subscribe": ("resource", "uri"),
    "resources/unsubscribe": ("resource", "uri"),
}


@dataclass(frozen=True, slots=True)
class TraceIds:
    """A call's place in a trace, fixed when the call is recorded (W3C Trace Context ids, as integers)."""

    trace_id: int
    span_id: int  # the call's `mcp <method>` span
    backend_span_id: int  # its `backend` child: the parent the backend's own spans name
    parent_span_id: int  # the caller's span (0: none, the call starts the trace)
    sampled: bool
    tracestate: tuple[tuple[str, str], ...] = ()  # the caller's, passed on

    def traceparent(self) -> str:
        """The `traceparent` the backend gets: the gateway's `backend` span as its parent."""
        return format_traceparent(self.trace_id, self.backend_span_id, self.sampled)

    def tracestate_header(self) -> str | None:
        return ",".join(f"{key}={value}" for key, value in self.tracestate) if self.tracestate else None


@dataclass(slots=True)
class McpCall:
    """One JSON-RPC message a client sent, and what became of it."""

    method: str
    request_id: RequestId | None
    started: float
    target_type: str = "server"
    target: str | None = None
    params: Any = None
    outcome: Outcome | None = None
    error_code: int | None = None
    error_message: str | None = None
    decision: Literal["allow", "deny"] | None = None
    policies: tuple[str, ...] = ()
    policy_names: tuple[str, ...] = ()  # the deciding policies' `@id` annotations (or ids), when any has one
    why: str | None = None  # what decided it (`hivegate.authz.explain.why`)
    decided_on: tuple[str, str] | None = None  # (action, tool/prompt name or resource URI) of a Cedar decision
    decision_input: DecisionInput | None = None  # what else the decision read, for the audit trail
    authz_duration: float | None = None  # from `started` to the policy decision
    filtered: tuple[int, int] | None = None  # a list answer cut down per caller: (items kept, items withheld)
    duration: float | None = None
    response: Any = None
    trace: TraceIds | None = None  # set when the gateway traces
    propagated: bool = False  # the forwarded request names the gateway's `backend` span as its parent
    deferred: bool = False  # answered after the HTTP exchange ends (`Exchange.defer`)

    @property
    def settled(self) -> bool:
        return self.outcome is not None

    def settle(
        self, outcome: Outcome, *, code: int | None = None, message: str | None = None, response: Any = None
    ) -> None:
        """Record how the call ended (the first settlement wins)."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        self.error_code, self.error_message = code, message
        self.duration = time.perf_counter() - self.started
        self.response = response

    def answered(self, reply: Message | None) -> None:
        """Settle from the JSON-RPC answer the client got (None: no answer, e.g. the client cancelled)."""
        if reply is None:
            self.settle("error", message="no answer")
            return
        error = reply.get("error")
        if isinstance(error, Mapping):
            code = error.get("code")
            text = error.get("message")
            outcome: Outcome = "failure"
            if code == 403:
                outcome = "denied"
            elif code in (-32000, -32001, -32603):  # backend unavailable, session gone, internal error
                outcome = "error"
            shown = str(text)[:200] if text is not None else None
            self.settle(outcome, code=code if isinstance(code, int) else None, message=shown)
            return
        result = reply.get("result")
        tool_error = isinstance(result, Mapping) and result.get("isError") is True
        self.settle("application_error" if tool_error else "success", response=result)

    def decided(
        self,
        allowed: bool,
        policies: tuple[str, ...],
        *,
        names: tuple[str, ...] = (),
        why: str | None = None,
        decided_on: tuple[str, str] | None = None,
        decision_input: DecisionInput | None = None,
    ) -> None:
        self.decision = "allow" if allowed else "deny"
        self.policies = policies
        self.policy_names, self.why, self.decided_on, self.decision_input = names, why, decided_on, decision_input
        self.authz_duration = time.perf_counter() - self.started

    def filtered_list(self, kept: int, withheld: int) -> None:
        """The call's list answer was filtered by the policies (`McpGate.list_filter`)."""
        self.filtered = (kept, withheld)


@dataclass(slots=True)
class Exchange:
    """One HTTP exchange with the gateway."""

    request_id: str
    path: str
    http_method: str
    source: str
    user_agent: str | None
    started: float = field(default_factory=time.perf_counter)
    wall_time: float = field(default_factory=time.time)
    principal: Principal | None = None
    session_id: str | None = None
    status: int | None = None
    auth_error: str | None = None
    auth_duration: float | None = None
    client_info: Mapping[str, Any] | None = None
    calls: list[McpCall] = field(default_factory=list)
    tracer: CallTracer | None = field(default=None, repr=False)
    traceparent: str | None = field(default=None, repr=False)  # the caller's W3C headers, as sent; never logged
    tracestate: str | None = field(default=None, repr=False)
    report: Callable[[Exchange], None] | None = field(default=None, repr=False)  # when deferred calls settle

    @classmethod
    def open(cls, path: str, http_method: str, source: str, user_agent: str | None) -> Exchange:
        return cls(_next_request_id(), path, http_method, source, user_agent)

    def trace_with(self, tracer: CallTracer, traceparent: str | None, tracestate: str | None) -> None:
        """Trace this exchange's calls with `tracer`, as children of the caller's span if the headers name one."""
        self.tracer, self.traceparent, self.tracestate = tracer, traceparent, tracestate

    def call(self, message: Message) -> McpCall:
        """Record a client message; returns the call to settle later (a notification, which has no answer, is settled
        by the HTTP status it got: a `notifications/initialized` refused with 400 is a failure). When the
        exchange is traced, a request's `params` may be replaced by a copy whose `_meta` names the gateway's span
        (`TraceMeta`); the call keeps the params as the caller sent them."""
        method = str(message.get("method", ""))
        params = message.get("params")
        call = McpCall(method, message.get("id"), time.perf_counter(), params=params)
        target = _TARGETS.get(method)
        if target is not None and isinstance(params, Mapping):
            value = params.get(target[1])
            call.target_type, call.target = target[0], value if isinstance(value, str) else None
        if method == "initialize" and isinstance(params, Mapping):
            info = params.get("clientInfo")
            if isinstance(info, Mapping):
                self.client_info = info
        if self.tracer is not None:
            call.trace = self.tracer.trace_call(self, call)
            # Not added to initialize (its params are kept and replayed: restarts, resumed sessions, vMCP backends)
            # nor to an unsampled call; but a trace context the caller put in `_meta` is always replaced.
            add = call.trace.sampled and method != "initialize"
            if "id" in message and (add or carries_trace_context(params)):
                call.propagated = _propagate(message, call.trace)
        self.calls.append(call)
        return call

    def unsettled(self) -> list[McpCall]:
        """The calls still open, but those answered later (`defer`)."""
        return [c for c in self.calls if c.outcome is None and not c.deferred]

    def defer(self, call: McpCall) -> Callable[[Message | None], None]:
        """`call` is answered after the HTTP exchange ends: returns what settles it from its answer (None: none
        will come). The exchange is reported once every deferred call has settled (`report`, set by the gateway)."""
        call.deferred = True

        def answered(reply: Message | None) -> None:
            if call.settled:
                return
            call.answered(reply)
            report = self.report
            if report is not None and not self.waiting():
                self.report = None
                report(self)

        return answered

    def waiting(self) -> bool:
        """Whether a deferred call has no answer yet."""
        return any(c.deferred and c.outcome is None for c in self.calls)


_ID_PREFIX = secrets.token_hex(4)  # this process's: ids from replicas do not collide
_id_counter = itertools.count(1)


def _next_request_id() -> str:
    """A request id unique in this process and, with the random prefix, across processes (16 hex digits). Not a
    secret, so a counter: `os.urandom` per request was a system call on every request's path."""
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFF:08x}"


@runtime_checkable
class CallTracer(Protocol):
    """Fixes a call's trace ids when it is recorded (the spans themselves come when the exchange ends)."""

    def trace_call(self, exchange: Exchange, call: McpCall) -> TraceIds: ...


def _propagate(message: Message, trace: TraceIds) -> bool:
    """Name the gateway's `backend` span as the parent in the request's `params._meta` (MCP SEP-414). New dicts: the
    call keeps the caller's params as sent, and the caller's own `traceparent`/`tracestate` are replaced."""
    params = message.get("params")
    if params is not None and not isinstance(params, Mapping):
        return False  # positional params have no `_meta`
    meta = params.get("_meta") if params is not None else None
    carried: dict[str, Any] = {}
    if isinstance(meta, Mapping):
        carried = {key: value for key, value in meta.items() if key not in _TRACE_KEYS}
    carried["traceparent"] = trace.traceparent()
    if (state := trace.tracestate_header()) is not None:
        carried["tracestate"] = state
    message["params"] = {**(params or {}), "_meta": TraceMeta(carried)}
    return True


class TraceMeta(dict[str, Any]):
    """The `_meta` of a request the gateway traced: its `traceparent` names the gateway's `backend` span. (A plain
    dict on the wire; the type tells an HTTP transport to send the same as headers, which it must not do for a
    caller's own `_meta`.)"""


def carries_trace_context(params: Any) -> bool:
    """Whether request params carry a `_meta.traceparent` or `_meta.tracestate` of their own."""
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    return isinstance(meta, Mapping) and any(key in meta for key in _TRACE_KEYS)


class Observer(Protocol):
    """Something that wants to know about every finished exchange (audit, metrics, traces)."""

    def exchange_done(self, exchange: Exchange) -> None: ...


def exchange_of(scope: Mapping[str, Any]) -> Exchange | None:
    found = scope.get(EXCHANGE_KEY)
    return found if isinstance(found, Exchange) else None
