"""Start `hivegate run --foreground` as a real process and wait (with a deadline, no fixed sleep) until it serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "stdio_server.py")
_URL = re.compile(r"at (http://\S+)")


@dataclass
class RunningGateway:
    url: str
    process: asyncio.subprocess.Process
    stderr: list[str]
    stdout: list[str]  # the lines before the serving line (with `--log-output stdout`: the start-up log lines)

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]


@asynccontextmanager
async def hivegate_run(
    args: Sequence[str], *, timeout: float = 30.0, env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningGateway]:
    """`hivegate run --foreground ARGS`, until the block ends."""
    async with hivegate_process(["run", "--foreground", *args], timeout=timeout, env=env) as gateway:
        yield gateway


@asynccontextmanager
async def hivegate_vmcp(
    args: Sequence[str], *, timeout: float = 30.0, env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningGateway]:
    """`hivegate vmcp serve ARGS` (e.g. `--config FILE --port 0`), until the block ends."""
    async with hivegate_process(["vmcp", "serve", *args], timeout=timeout, env=env) as gateway:
        yield gateway


@asynccontextmanager
async def hivegate_process(
    argv: Sequence[str], *, timeout: float = 30.0, env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningGateway]:
    """`hivegate ARGV` as a real process; yields once it prints the URL it serves at, terminates it afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hivegate",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stderr: list[str] = []

    async def drain_stderr() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            stderr.append(line.decode(errors="replace").rstrip())

    drain = asyncio.create_task(drain_stderr())
    try:
        assert proc.stdout is not None
        url = None
        stdout: list[str] = []
        async with asyncio.timeout(timeout):
            while url is None:
                line = await proc.stdout.readline()
                if not line:
                    await proc.wait()
                    said = " | ".join([*stdout, *stderr][-5:])
                    raise RuntimeError(f"hivegate exited with {proc.returncode}: {said}")
                url = _served_url(line.decode())
                if url is None:
                    stdout.append(line.decode(errors="replace").rstrip())
        yield RunningGateway(url=url, process=proc, stderr=stderr, stdout=stdout)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


def _served_url(line: str) -> str | None:
    """The URL a `hivegate: serving ... at URL` line names, as text or as one JSON line (`--log-format json`; with
    `--log-output stdout` the log lines before it are JSON too)."""
    if line.startswith("{"):
        served = json.loads(line)
        return str(served["url"]) if str(served.get("msg", "")).startswith("hivegate: serving ") else None
    match = _URL.search(line)
    return match.group(1) if match else None


def fixture_command() -> list[str]:
    return ["--", sys.executable, FIXTURE]
