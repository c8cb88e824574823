"""Backends the virtual MCP server starts itself and then reaches over HTTP: a local command that listens on its
`url` (`hivegate.dev/command` with an HTTP transport), or a container image run with Docker or Podman and published
on a loopback port.

The process runs in a session of its own, so stopping it stops everything it started; one that exits is started
again by the next health check. Its output goes to the gateway's log at debug level, one line at a time.
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
from hivegate.vmcp.spec import BackendConfig

__all__ = ["Launched", "container_argv", "launched_for"]

logger = logging.getLogger("hivegate.vmcp.launch")

_STOP_GRACE = 5.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def container_argv(
    runtime: str, image: str, host_port: int, port: int, env: Sequence[str], args: Sequence[str]
) -> list[str]:
    """`docker run` for an HTTP server image: published on 127.0.0.1 only; env values come from the environment
    (`-e NAME`), never from the command line."""
    argv = [runtime, "run", "--rm", "--init", "-p", f"127.0.0.1:{host_port}:{port}"]
    for name in env:
        argv += ["-e", name]
    return [*argv, image, *args]


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


def launched_for(backend: BackendConfig) -> Launched | None:
    """The process to start for `backend` (None for a stdio or already running one)."""
    if backend.kind == "launched":
        assert backend.command is not None
        assert backend.url is not None
        return Launched(backend.name, [backend.command, *backend.args], backend.url, backend.env)
    if backend.kind == "container":
        spec = backend.container
        assert spec is not None
        host_port = _free_port()
        path = "/sse" if backend.transport == "sse" else "/mcp"
        argv = container_argv(spec.runtime, spec.image, host_port, spec.port, list(spec.env), spec.args)
        return Launched(backend.name, argv, f"http://127.0.0.1:{host_port}{path}", spec.env)
    return None
