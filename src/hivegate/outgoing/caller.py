"""Who the current request is for, as outgoing authentication needs it: the principal and the raw bearer token it
presented (the subject of a token exchange). Set by the gateway around each authenticated request; read where a
backend request is sent, in the same task."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from hivegate.core.principal import Principal

__all__ = ["Caller", "current_caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    token: str | None = field(default=None, repr=False)


current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("hivegate_caller", default=None)
