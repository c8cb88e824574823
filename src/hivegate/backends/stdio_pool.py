"""`--stdio-sharing`: how many stdio server processes the client sessions of one backend share.

`per-session` (0): each session starts its own process (isolation; memory grows with sessions). `shared` (1): one
process for all. `pool=N`: N processes, each new session on the least loaded one (fewest sessions, then fewest
requests in flight); a session stays on its process for its life, and moves only when that process exits.
"""

from __future__ import annotations

from collections.abc import Callable

from hivegate.backends.multiplex import Channel, SharedProcess
from hivegate.backends.transport import Transport, TransportFactory

__all__ = ["StdioPool", "parse_sharing", "sharing_name"]

_MAX_POOL = 64


def parse_sharing(text: str) -> int:
    """`per-session` → 0, `shared` → 1, `pool=N` → N (1..64). Raises ValueError naming the value."""
    value = text.strip()
    if value == "per-session":
        return 0
    if value == "shared":
        return 1
    size = value.removeprefix("pool=")
    if size != value and size.isdigit() and 1 <= int(size) <= _MAX_POOL:
        return int(size)
    raise ValueError(f"expected per-session, shared or pool=N (N from 1 to {_MAX_POOL}), got {text!r}")


def sharing_name(size: int) -> str:
    """The inverse of `parse_sharing`, for the start-up summary."""
    return "per-session" if size == 0 else "shared" if size == 1 else f"pool={size}"


class StdioPool:
    """`size` shared processes of one backend; `channel` is the `TransportFactory` of the sessions."""

    def __init__(
        self,
        factory: TransportFactory,
        *,
        size: int,
        name: str,
        linger: float = 0.0,
        on_idle_stop: Callable[[], None] | None = None,
    ) -> None:
        self.processes = [
            SharedProcess(factory, name=name, linger=linger, on_idle_stop=on_idle_stop) for _ in range(size)
        ]

    def channel(self) -> Transport:
        """A channel that opens on the least loaded process."""
        return Channel(self._least_loaded)

    def _least_loaded(self) -> SharedProcess:
        return min(self.processes, key=lambda process: process.load)

    async def close(self) -> None:
        for process in self.processes:
            await process.close()
