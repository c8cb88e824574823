"""A stdio MCP server in a container: one container per client session, as a stdio command is one process per
session. The runtime's client (`docker run -i`) is the process; its stdin and stdout are the container's, its stderr
the container's stderr, so the session and the server's log work as for any stdio command.

A container that did not stop when its stdin closed, so that its runtime client had to be signalled, is removed by
name (`rm -f`): killing the client does not stop a container (the runtime's daemon, or conmon, runs it).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence

from hivegate.backends.container import ContainerRun, container_name, remove, run_argv
from hivegate.backends.stdio import StdioTransport

__all__ = ["ContainerStdioTransport"]


class ContainerStdioTransport(StdioTransport):
    def __init__(
        self,
        run: ContainerRun,
        *,
        labels: Sequence[tuple[str, str]],
        env: Mapping[str, str] | None = None,
        name: str = "stdio",
    ) -> None:
        self.container = container_name(name, secrets.token_hex(4))
        super().__init__(run_argv(run, name=self.container, labels=labels), env=env, name=name)
        self._runtime = run.runtime

    async def close(self) -> None:
        await super().close()
        if self.signalled:
            await asyncio.to_thread(remove, self._runtime, [self.container])
