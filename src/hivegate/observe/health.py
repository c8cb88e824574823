"""Readiness: named checks that must all pass before the gateway should get traffic (`/readyz`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Readiness", "tcp_reachable"]

Check = Callable[[], Awaitable[str | None]]  # None: fine; a string: what is wrong


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


class Readiness:
    """Runs every check (each bounded by `timeout`); results are cached for `ttl` seconds so probes stay cheap."""

    def __init__(self, *, timeout: float = 2.0, ttl: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout
        self._ttl = ttl
        self._cached: tuple[float, list[CheckResult]] | None = None
        self._lock = asyncio.Lock()

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def results(self) -> list[CheckResult]:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
            results = list(await asyncio.gather(*(self._run(n, c) for n, c in self._checks.items())))
            self._cached = (time.monotonic(), results)
            return results

    async def _run(self, name: str, check: Check) -> CheckResult:
        try:
            async with asyncio.timeout(self._timeout):
                problem = await check()
        except TimeoutError:
            problem = f"no answer within {self._timeout:g} s"
        except Exception as exc:  # a failing check is a finding, not a crash
            problem = str(exc) or type(exc).__name__
        return CheckResult(name, problem is None, problem or "ok")


async def tcp_reachable(host: str, port: int) -> str | None:
    """None when a TCP connection to host:port opens; otherwise why not."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    writer.close()
    return None
