"""A stdio MCP server as a child process: newline-delimited JSON-RPC on stdin/stdout, stderr to our log (at a
bounded rate: what is left out is counted on the next line written)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from typing import ClassVar

import orjson

from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message
from hivegate.errors import BackendError
from hivegate.observe.ratelimit import RateLimitedLog
from hivegate.outgoing.caller import Caller

__all__ = ["StdioTransport"]

logger = logging.getLogger("hivegate.backend.stdio")
# The server's own stderr, one record per line (the raw line in `stderr_line`): a logger of its own, so a background
# workload can send it to a file of its own (`hivegate logs NAME`) and keep it out of the gateway's log.
server_stderr = logging.getLogger("hivegate.server.stderr")

_LINE_LIMIT = 64 * 1024 * 1024
_STDERR_LINE_LIMIT = 8192  # characters of one stderr line that reach the log


class StdioTransport:
    running: ClassVar[int] = 0  # processes of this gateway alive now (the `hivegate_stdio_processes` gauge)

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        name: str = "stdio",
        cwd: str | None = None,
    ) -> None:
        self._command = list(command)
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._name = name
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._reason = "not started"
        self._counted = False  # counted in `running`
        self.signalled = False  # close() had to signal the process: it did not exit when its stdin closed
        # a server flooding stderr must not flood the gateway's log (or disk): 100 lines, then 20 a second
        self._stderr = RateLimitedLog(server_stderr, rate=20.0, burst=100)

    async def open(self, on_message: MessageHandler) -> None:
        # The child inherits the gateway's environment minus hivegate's own settings (they may hold secrets, such
        # as HIVEGATE_OIDC_CLIENT_SECRET), plus what --env gave it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HIVEGATE_")}
        env.update(self._env or {})
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self._cwd,
                limit=_LINE_LIMIT,
                start_new_session=True,
            )
        except OSError as exc:
            self._reason = f"cannot start {self._command[0]!r}: {exc.strerror or exc}"
            self._closed.set()
            raise BackendError(self._reason) from exc
        StdioTransport.running += 1
        self._counted = True
        self._tasks = [
            asyncio.create_task(self._read_stdout(on_message)),
            asyncio.create_task(self._read_stderr()),
        ]

    async def _read_stdout(self, on_message: MessageHandler) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                try:
                    line = await stdout.readline()
                except ValueError:
                    logger.warning("%s: dropped a line longer than %d bytes", self._name, _LINE_LIMIT)
                    continue
                if not line:
                    break
                try:
                    message = orjson.loads(line)
                except orjson.JSONDecodeError:
                    logger.warning("%s: ignored a non-JSON line on stdout", self._name)
                    continue
                if isinstance(message, dict):
                    on_message(message)
                elif isinstance(message, list):  # a batch from an old server
                    for item in message:
                        if isinstance(item, dict):
                            on_message(item)
        except Exception:  # a bug in a handler must not leave the process unattended
            logger.exception("%s: error while reading the backend's output", self._name)
        finally:
            try:
                code = await self._proc.wait()
            finally:
                self._uncount()
            self._reason = f"process exited with code {code}"
            self._closed.set()

    async def _read_stderr(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        stderr = self._proc.stderr
        while True:
            try:
                line = await stderr.readline()
            except ValueError:
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if len(text) > _STDERR_LINE_LIMIT:
                text = f"{text[:_STDERR_LINE_LIMIT]}… ({len(text) - _STDERR_LINE_LIMIT} characters cut)"
            self._stderr.log(logging.INFO, "%s: %s", self._name, text, extra={"stderr_line": text})

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """Write one message to the process's stdin (`caller` does not matter: a local process gets no credential)."""
        proc = self._proc
        if proc is None or proc.stdin is None or self._closed.is_set():
            raise BackendError(f"backend {self._name!r} is not running")
        try:
            proc.stdin.write(orjson.dumps(message) + b"\n")
            await proc.stdin.drain()
        except (ConnectionError, BrokenPipeError) as exc:
            raise BackendError(f"backend {self._name!r} is not running") from exc

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return self._reason

    async def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                self.signalled = True
                _signal_group(proc, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 3.0)
                except TimeoutError:
                    _signal_group(proc, signal.SIGKILL)
                    await proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1.0)
        self._uncount()
        self._closed.set()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            StdioTransport.running -= 1


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
