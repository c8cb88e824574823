"""Who a request is for, as outgoing authentication needs it: the principal and the raw bearer token it presented
(the subject of a token exchange). Built by the gateway for each authenticated request and passed explicitly from
there, through the fronts and the backend sessions, to the transport that sends the message to a backend."""

from __future__ import annotations

from dataclasses import dataclass, field

from hivegate.core.principal import Principal

__all__ = ["Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    token: str | None = field(default=None, repr=False)
