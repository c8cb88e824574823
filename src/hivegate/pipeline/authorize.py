"""Pipeline stage "authorization": which messages of a body go on, and the refusal each of the others gets.

Every front hands its parsed body (`messages.Inbound`) here and delivers the outcome its own way: the Streamable
HTTP fronts answer a refused request (or a batch with one refused request: a batch goes on whole or not at all) in
the POST's response, the legacy SSE front on its event stream. Each request's decision is recorded on its audited
call. A `tools/call` decided on tool annotations the gateway has not seen yet first has the front list the tools
(`learn_tools`), so the decision reads the annotations; a failure leaves them unknown.

When every refusal of a body is for scopes the token lacks (`requiredScopes`), asking for them would let it through:
`admit` raises `InsufficientScope` instead, on every front alike, and the gateway answers HTTP 403 with the
`insufficient_scope` challenge (MCP authorization, "Scope Challenge Handling") whose `scope` lists the scopes the
calls need and those the token has. A body with any other refusal is answered as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from hivegate.authz.explain import why
from hivegate.authz.gate import McpGate, refusal
from hivegate.core.jsonrpc import Message, RequestId
from hivegate.core.principal import Principal
from hivegate.errors import InsufficientScope
from hivegate.observe.exchange import McpCall
from hivegate.pipeline.messages import Inbound

__all__ = ["Admission", "admit"]


@dataclass(frozen=True, slots=True)
class Admission:
    """The refusals (request id → HTTP status and JSON-RPC answer) of a body; empty when everything goes on."""

    refusals: Mapping[RequestId, tuple[int, Message]] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return not self.refusals

    def answer(self, inbound: Inbound) -> tuple[int, Message | list[Message]]:
        """The HTTP status and body a refused POST gets: the one refusal, or for a batch every refusal (403)."""
        if inbound.batch:
            return 403, [body for _, body in self.refusals.values()]
        return next(iter(self.refusals.values()))


ALLOW = Admission()


async def admit(
    gate: McpGate | None,
    principal: Principal,
    inbound: Inbound,
    calls: Mapping[RequestId, McpCall],
    learn_tools: Callable[[], Awaitable[None]] | None = None,
) -> Admission:
    """Decide every request of `inbound` for `principal` (`calls`: the audited call of each request id)."""
    if gate is None:
        return ALLOW
    requests = inbound.requests
    if learn_tools is not None and any(gate.needs_tool_list(m) for m in requests):
        await learn_tools()
    refusals: dict[RequestId, tuple[int, Message]] = {}
    needed: list[str] = []
    step_up = True  # every refusal is for missing scopes
    for request in requests:
        verdict = gate.check(principal, request)
        call = calls.get(request["id"])
        if call is not None and (decision := verdict.decision) is not None:
            call.decided(
                verdict.allowed,
                decision.reasons,
                names=decision.names,
                why=why(decision, verdict.action),
                decided_on=(verdict.action, verdict.resource) if verdict.action and verdict.resource else None,
                decision_input=verdict.input,
            )
        if not verdict.allowed:
            refusals[request["id"]] = refusal(verdict, request["id"])
            needed += verdict.scopes
            step_up = step_up and bool(verdict.scopes)
    if not refusals:
        return ALLOW
    admission = Admission(refusals)
    if step_up:
        _, answer = admission.answer(inbound)
        for reply in answer if isinstance(answer, list) else [answer]:
            if (found := calls.get(reply["id"])) is not None:
                found.answered(reply)
        raise InsufficientScope(" ".join(dict.fromkeys([*needed, *principal.scopes])), answer)
    return admission
