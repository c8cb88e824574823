"""Annotation hints for policies on the fronts that hold a backend session.

A policy may test a tool's `readOnlyHint` & co., which only the backend's `tools/list` tells, and a client may
call a tool without listing first: before such a call is decided the gateway lists the tools itself, on the
caller's own backend session. A failure leaves the hints unknown and the policies decide without them.
"""

from __future__ import annotations

import logging

from hivegate.authz.gate import McpGate
from hivegate.backends.session import BackendSession
from hivegate.errors import BackendError

__all__ = ["learn_tool_hints"]

logger = logging.getLogger("hivegate.authz")

_MAX_WAIT = 10.0  # seconds: a call waits at most this long for the hints


async def learn_tool_hints(gate: McpGate, backend: BackendSession, name: str, timeout: float) -> None:
    """Ask `backend` (the server called `name`) for its tool list and give the annotations to `gate`."""
    try:
        answer = await backend.ask("tools/list", {}, min(timeout, _MAX_WAIT))
    except (BackendError, TimeoutError) as exc:
        logger.info("backend %r: could not list tools for their annotations: %s", name, exc)
        return
    gate.learn_tool_list(answer)
