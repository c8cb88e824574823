"""What happened in one HTTP exchange, for the audit trail, metrics, traces and logs.

The gateway opens an `Exchange` per HTTP request (request id, source, timing) and hands it down in the ASGI scope;
authentication sets the principal; the MCP fronts add one `McpCall` per JSON-RPC request or notification they
handle and settle it when its answer is known. When the HTTP exchange ends, the gateway passes the exchange to
every `Observer`. Observers must not raise and must not block (they run on the event loop).
"""

from __future__ import annotations

import contextvars
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from hivegate.core.jsonrpc import Message, RequestId
from hivegate.core.principal import Principal

__all__ = [
    "EXCHANGE_KEY",
    "Exchange",
    "McpCall",
    "Observer",
    "Outcome",
    "current_request_id",
    "exchange_of",
]

EXCHANGE_KEY: Final = "hivegate.exchange"
Outcome = Literal["success", "failure", "error", "denied", "application_error"]

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hivegate_request_id", default=None)

# method → (target type, params key naming the target)
_TARGETS: Mapping[str, tuple[str, str]] = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
    "resources/subscribe": ("resource", "uri"),
    "resources/unsubscribe": ("resource", "uri"),
}


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
    authz_duration: float | None = None  # from `started` to the policy decision
    duration: float | None = None
    response: Any = None

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

    def decided(self, allowed: bool, policies: tuple[str, ...]) -> None:
        self.decision = "allow" if allowed else "deny"
        self.policies = policies
        self.authz_duration = time.perf_counter() - self.started


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

    @classmethod
    def open(cls, path: str, http_method: str, source: str, user_agent: str | None) -> Exchange:
        return cls(secrets.token_hex(8), path, http_method, source, user_agent)

    def call(self, message: Message) -> McpCall:
        """Record a client message; returns the call to settle later (notifications settle at once)."""
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
        if "id" not in message:
            call.settle("success")
        self.calls.append(call)
        return call

    def unsettled(self) -> list[McpCall]:
        return [c for c in self.calls if c.outcome is None]


class Observer(Protocol):
    """Something that wants to know about every finished exchange (audit, metrics, traces)."""

    def exchange_done(self, exchange: Exchange) -> None: ...


def exchange_of(scope: Mapping[str, Any]) -> Exchange | None:
    found = scope.get(EXCHANGE_KEY)
    return found if isinstance(found, Exchange) else None
