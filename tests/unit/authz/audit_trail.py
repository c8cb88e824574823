"""Audit lines made the way the gateway makes them: `pipeline.authorize.admit` decides each request through a real
`McpGate` and records the decision on the call, then the real `Auditor` writes the line."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.entities import Locator
from hivegate.authz.gate import McpGate
from hivegate.core.principal import Principal
from hivegate.errors import InsufficientScope
from hivegate.observe.audit import AuditConfig, Auditor, event_type
from hivegate.observe.exchange import Exchange
from hivegate.pipeline.authorize import admit
from hivegate.pipeline.messages import Inbound

_ids = itertools.count(1)


@dataclass
class Fixed:
    current: CedarAuthorizer


class Trail:
    """Decides requests through the gateway's gate and keeps the audit lines it would write."""

    def __init__(
        self, authorizer: CedarAuthorizer, config: AuditConfig | None = None, *, locate: Locator | None = None
    ) -> None:
        self.gate = McpGate(Fixed(authorizer), listeners=(lambda _: None,), locate=locate)
        self.auditor = Auditor(config or AuditConfig(), component="srv", transport="streamable-http")
        self.lines: list[bytes] = []

    async def request(self, principal: Principal, method: str, params: dict[str, Any]) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
        exchange = Exchange.open("/mcp", "POST", "127.0.0.1", "test/1")
        exchange.principal = principal
        call = exchange.call(message)
        try:
            admission = await admit(self.gate, principal, Inbound((message,), False, b""), {message["id"]: call})
        except InsufficientScope:
            admission = None
        if admission is not None and admission.allowed:
            call.answered({"jsonrpc": "2.0", "id": message["id"], "result": {}})
        elif admission is not None:
            _, body = admission.answer(Inbound((message,), False, b""))
            call.answered(body if isinstance(body, dict) else body[0])
        event = self.auditor.event(exchange, call, event_type(method))
        self.lines.append(orjson.dumps(event))
        return event

    async def call_tool(self, principal: Principal, name: str, **arguments: Any) -> dict[str, Any]:
        return await self.request(principal, "tools/call", {"name": name, "arguments": arguments})
