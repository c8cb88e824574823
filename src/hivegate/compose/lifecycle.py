"""What a composition root collects while it builds a gateway: start-up hooks, shutdown hooks and summary lines.

Shutdown hooks go on one exit stack, so they run in the reverse order of registration: what was built first (and is
used by what came after, e.g. the audit log that session teardown still writes to) is closed last. A hook that fails
is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

__all__ = ["Hook", "Lifecycle"]

logger = logging.getLogger("hivegate")

Hook = Callable[[], Awaitable[None]]


@dataclass
class Lifecycle:
    """Hooks run at start-up (in order) and at shutdown (in reverse order of registration), and the lines of the
    start-up summary."""

    startup: list[Hook] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    _exits: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    def on_shutdown(self, hook: Hook) -> None:
        """Run `hook` at shutdown, before every hook registered earlier."""
        self._exits.push_async_callback(_logged, hook)

    async def shutdown(self) -> None:
        """Run the shutdown hooks (once)."""
        await self._exits.aclose()


async def _logged(hook: Hook) -> None:
    try:
        await hook()
    except Exception:
        logger.exception("error during shutdown")
