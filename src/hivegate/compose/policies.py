"""The live Cedar policies of a gateway, behind an `McpGate`, for `run` and `vmcp serve` alike.

`run` reads them from `--authz-config FILE`: reloaded on SIGHUP and whenever the file changes. `vmcp serve` reads
them from its configuration (`incomingAuth.authz`, inline or a ConfigMap): reloaded on SIGHUP, by loading the whole
configuration again and compiling its policies. Either way a reload compiles off the event loop and swaps one
reference (requests in flight finish under the policies they started with), and a source that does not load
leaves the policies in force and the log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable

from hivegate.authz.entities import Locator
from hivegate.authz.gate import McpGate
from hivegate.authz.store import PolicySource, PolicyStore
from hivegate.compose.lifecycle import Lifecycle

__all__ = ["policy_gate"]

logger = logging.getLogger("hivegate")


def policy_gate(
    source: PolicySource, server_name: str, lifecycle: Lifecycle, *, watch: bool, locate: Locator | None = None
) -> McpGate:
    """Load the policies (one that does not load stops start-up) and keep them current: SIGHUP reloads them, and
    with `watch` a change of the source's content does too (polled every 2 s). `locate`: a virtual MCP server's
    backend of each advertised name (`McpGate`)."""
    store = PolicyStore(source, server_name)
    tasks: set[asyncio.Future[object]] = set()

    def spawn(coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def start() -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGHUP, lambda: spawn(store.reload(reason="SIGHUP")))
        if watch:
            spawn(store.watch())

    async def stop() -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    lifecycle.startup.append(start)
    lifecycle.on_shutdown(stop)
    logger.info("authz: %d Cedar policies loaded from %s", store.current.policy_count, source.name)
    return McpGate(store, locate=locate)
