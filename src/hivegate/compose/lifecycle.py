"""What a composition root collects while it builds a gateway: start-up and shutdown hooks and summary lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Hook", "Lifecycle"]

Hook = Callable[[], Awaitable[None]]


@dataclass
class Lifecycle:
    """Hooks run at start-up (in order) and at shutdown (in order), and the lines of the start-up summary."""

    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def on_shutdown(self, hook: Hook) -> None:
        self.shutdown.append(hook)
