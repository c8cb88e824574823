"""`--workers N`: N processes serve one listening socket that the parent bound (pre-forked accept).

The parent binds the sockets once (so `--port 0` and the printed URL keep working), then forks N workers that each
serve them; the kernel hands every new connection to one of the workers waiting in `accept`. The parent only
supervises: a worker that exits while the gateway is not stopping is started again (logged; five exits within ten
seconds stop the whole gateway, exit 1), and SIGTERM or SIGINT stop every worker gracefully (SIGTERM each; they get
the signal of a process group themselves too, which uvicorn takes as one). The exit code is 0 when every worker
ended on the signal or cleanly, 2 when a worker refused the configuration (exit 2: every worker would), 1
otherwise.

Every worker also listens on a private Unix socket, `w<index>.sock` in a directory of the parent's (mode 0700), so
that a worker can hand a request to the worker that holds its session (`asgi.affinity`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from hivegate.errors import ConfigError

__all__ = ["Worker", "parse_workers", "supervise"]

logger = logging.getLogger("hivegate.workers")

_RESTARTS = 5  # exits within `_RESTART_WINDOW` seconds that stop the gateway instead of restarting again
_RESTART_WINDOW = 10.0


def parse_workers(value: str) -> int:
    """`--workers N|auto`: a positive integer, or `auto` for the CPU cores this process may run on."""
    text = value.strip()
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if text.isdecimal() and int(text) >= 1:
        return int(text)
    raise ConfigError(f"--workers: expected a positive integer or auto, got {value!r}")


@dataclass(frozen=True, slots=True)
class Worker:
    """This process's place among the workers: `index` of `count`, peers' sockets in `peers`, and a random
    `secret` the workers share (made by the parent)."""

    index: int
    count: int
    peers: Path
    secret: bytes = field(default=b"", repr=False)

    def socket_path(self, index: int) -> str:
        return str(self.peers / f"w{index}.sock")


def supervise(count: int, serve: Callable[[Worker], int]) -> int:
    """Fork `count` workers that each run `serve(worker)` (its return value is the worker's exit code), keep them
    running until SIGTERM or SIGINT, and return the gateway's exit code. Call it before any thread or event loop
    exists in this process: the workers are forks of it."""
    peers = Path(tempfile.mkdtemp(prefix="hivegate-workers-"))  # mode 0700: only this user reaches the sockets
    children: dict[int, int] = {}  # pid → worker index
    stopping = False
    secret = secrets.token_bytes(32)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            _kill(pid)

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = 1
            try:
                code = serve(Worker(index, count, peers, secret))
            except KeyboardInterrupt:
                code = 0
            except BaseException:
                logger.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    exits: collections.deque[float] = collections.deque(maxlen=_RESTARTS)
    code = 0
    try:
        for index in range(count):
            start(index)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index_or_none = children.pop(pid, None)
            if index_or_none is None:
                continue
            index = index_or_none
            clean = os.waitstatus_to_exitcode(status) in (0, -signal.SIGTERM, -signal.SIGINT)
            if stopping:
                code = code or (0 if clean else 1)
                continue
            how = _how(status)
            if os.waitstatus_to_exitcode(status) == 2:  # the configuration was refused: so would it be again
                code, stopping = 2, True
                for other in list(children):
                    _kill(other)
                continue
            exits.append(time.monotonic())
            if len(exits) == _RESTARTS and exits[-1] - exits[0] < _RESTART_WINDOW:
                logger.error("worker %d (pid %d) %s; %d exits within %g s: stopping", index, pid, how, _RESTARTS,
                             _RESTART_WINDOW)  # fmt: skip
                code, stopping = 1, True
                for other in list(children):
                    _kill(other)
                continue
            logger.warning("worker %d (pid %d) %s; starting it again", index, pid, how)
            start(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(peers, ignore_errors=True)
    return code


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _how(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
