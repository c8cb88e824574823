"""A process that serves MCP over HTTP, started by the gateway and reached at its URL: a local command, or a
container's runtime client (`docker run -p …`).

The process runs in a session of its own, so stopping it stops everything it started; one that exits is started
again by the next `ensure_running` (the vMCP's health checks, `hivegate run`'s readiness check). Its output goes to
the gateway's log at debug level, one line at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from hivegate.errors import BackendError

__all__ = ["Launched", "free_port"]

logger = logging.getLogger("hivegate.backend.launched")

_STOP_GRACE = 5.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server the gateway starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Launched:
    def __init__(self, name: str, argv: Sequence[str], url: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.url = url
        self._argv = list(argv)
        self._env = dict(env)
        self._proc: asyncio.subprocess.Process | None = None
        self._tail: deque[str] = deque(maxlen=5)
        self._reader: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def ensure_running(self, timeout: float) -> None:
        """Start the process if it is not running and wait until its port accepts connections; `BackendError` with
        the reason (and its last output lines) when it exits or does not listen in time."""
        if self.running:
            return
        if self._proc is not None:
            logger.warning("backend %r exited with %s; starting it again", self.name, self._proc.returncode)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HIVEGATE_")}
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**environ, **self._env},
                start_new_session=True,
            )
        except OSError as exc:
            raise BackendError(f"cannot start {self._argv[0]!r}: {exc.strerror or exc}") from None
        self._reader = asyncio.create_task(self._read(self._proc))
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._proc.returncode is not None:
                        await asyncio.sleep(0.05)  # let the last output arrive
                        said = f": {' | '.join(self._tail)}" if self._tail else ""
                        raise BackendError(f"exited with {self._proc.returncode} before listening{said}")
                    with contextlib.suppress(OSError):
                        _, writer = await asyncio.open_connection(host, port)
                        writer.close()
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            await self.stop()
            raise BackendError(f"did not listen on {host}:{port} within {timeout:g} s") from None

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line[:200])
            logger.debug("backend %r: %s", self.name, line)
