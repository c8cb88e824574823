"""Load generators and clients for the benchmarks.

* ``run_wrk``: throughput (and latency distribution) with wrk and ``wrk_post.lua``.
* ``latency_run``: a sequential aiohttp client, one request at a time over one keep-alive connection.
* ``http_load``: a Python (aiohttp) load generator, N concurrent workers for a fixed duration; used for
  MCP sessions through the gateway (each worker carries its own ``Mcp-Session-Id``) and as the
  fallback when wrk is missing.
* ``stdio_load``: drives stdio MCP servers directly over stdin/stdout (raw JSON-RPC lines).

Every response is parsed and checked (JSON or SSE); a fast error is counted as an error, not a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from harness import cpu_seconds

PROTOCOL_VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
CLIENT_INFO = {"name": "hivegate-bench", "version": "1.0"}

BodyFactory = Callable[[int], bytes]


class RpcError(Exception):
    """A response that is not a successful JSON-RPC result for the request sent."""


def tools_call(request_id: int, tool: str = "echo", text: str = "hello") -> bytes:
    """A ``tools/call`` JSON-RPC request body."""
    params = {"name": tool, "arguments": {"text": text}}
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def tools_list(request_id: int) -> bytes:
    """A ``tools/list`` JSON-RPC request body."""
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": {}})


def initialize_request(request_id: int = 0) -> dict[str, Any]:
    params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": params}


def request_headers(token: str | None, session_id: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": PROTOCOL_VERSION}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    return headers


def parse_rpc_body(content_type: str, body: bytes, expected_id: object) -> dict[str, Any]:
    """Return the JSON-RPC response for ``expected_id`` from a JSON or SSE body; raise RpcError otherwise."""
    messages: list[Any] = []
    if content_type.startswith("text/event-stream"):
        for event in re.split(rb"\r?\n\r?\n", body):
            data = b"\n".join(line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:"))
            if data:
                messages.append(orjson.loads(data))
    else:
        decoded = orjson.loads(body)
        messages.extend(decoded if isinstance(decoded, list) else [decoded])
    for message in messages:
        if isinstance(message, dict) and message.get("id") == expected_id:
            if "result" not in message:
                raise RpcError(f"JSON-RPC error: {message.get('error')}")
            return message
    raise RpcError(f"no response with id {expected_id!r} in {body[:200]!r}")


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class LatencyStats:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


@dataclass
class ThroughputStats:
    tool: str
    ok: int
    errors: int
    seconds: float
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    first_error: str | None = None
    server_cpu_s: float | None = None  # CPU time the server processes used during the measured window

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Counter:
    ok: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)

    def fail(self, error: BaseException | str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------- HTTP clients


async def post_rpc(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, request_id: object
) -> tuple[dict[str, Any], aiohttp.ClientResponse]:
    """POST one JSON-RPC request and return its parsed response (raises RpcError on any failure)."""
    async with session.post(url, data=body, headers=headers) as resp:
        payload = await resp.read()
        if resp.status != 200:
            raise RpcError(f"HTTP {resp.status}: {payload[:200]!r}")
        return parse_rpc_body(resp.headers.get("Content-Type", ""), payload, request_id), resp


async def probe(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
    """One request; returns (status, content type, body). For sanity checks."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def mcp_initialize(session: aiohttp.ClientSession, url: str, token: str | None) -> str | None:
    """Do a real MCP handshake (initialize + notifications/initialized); return the Mcp-Session-Id, if any."""
    _, resp = await post_rpc(session, url, request_headers(token), orjson.dumps(initialize_request()), 0)
    session_id = resp.headers.get("Mcp-Session-Id")
    notification = orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    async with session.post(url, data=notification, headers=request_headers(token, session_id)) as ack:
        await ack.read()
        if ack.status not in (200, 202, 204):
            raise RpcError(f"notifications/initialized: HTTP {ack.status}")
    return session_id


async def mcp_close(session: aiohttp.ClientSession, url: str, token: str | None, session_id: str | None) -> None:
    if session_id:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.delete(url, headers=request_headers(token, session_id)) as resp:
                await resp.read()


async def open_sessions(url: str, token: str | None, count: int, timeout: float = 180.0) -> list[str | None]:
    """Open ``count`` MCP sessions concurrently (each may spawn a stdio child behind a gateway)."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        return list(await asyncio.gather(*(mcp_initialize(session, url, token) for _ in range(count))))


async def close_sessions(url: str, token: str | None, session_ids: Sequence[str | None]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(mcp_close(session, url, token, sid) for sid in session_ids))


async def latency_run(
    url: str, headers: dict[str, str], make_body: BodyFactory, warmup: int, count: int, max_seconds: float
) -> LatencyStats:
    """Sequential requests over one keep-alive connection; per-request wall time.

    Stops early (with fewer samples) once the measured part has taken ``max_seconds``.
    """
    connector = aiohttp.TCPConnector(limit=1)
    samples: list[float] = []
    deadline = math.inf
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(warmup + count):
            if i == warmup:
                deadline = time.perf_counter() + max_seconds
            elif time.perf_counter() > deadline:
                break
            body = make_body(i)
            start = time.perf_counter()
            await post_rpc(session, url, headers, body, i)
            elapsed = (time.perf_counter() - start) * 1000
            if i >= warmup:
                samples.append(elapsed)
    samples.sort()
    return LatencyStats(
        count=len(samples),
        p50_ms=_percentile(samples, 50),
        p90_ms=_percentile(samples, 90),
        p99_ms=_percentile(samples, 99),
        mean_ms=statistics.fmean(samples),
    )


async def paired_latency_run(
    targets: dict[str, tuple[str, dict[str, str]]],
    make_body: BodyFactory,
    warmup: int,
    count: int,
    max_seconds: float,
    *,
    bodies: dict[str, BodyFactory] | None = None,
) -> dict[str, LatencyStats]:
    """Like ``latency_run`` for several targets at once, one request to each in turn (``{kind: (url, headers)}``).

    Each target has its own keep-alive connection. Interleaving the requests exposes the targets to the same
    machine state, so a difference between them is not drift (CPU frequency, other load) between two runs.
    ``bodies`` gives some targets a body factory of their own (e.g. the same tool under another name).
    """
    samples: dict[str, list[float]] = {kind: [] for kind in targets}
    deadline = math.inf
    timeout = aiohttp.ClientTimeout(total=30)
    async with contextlib.AsyncExitStack() as stack:
        sessions = {
            kind: await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout)
            )
            for kind in targets
        }
        for i in range(warmup + count):
            if i == warmup:
                deadline = time.perf_counter() + max_seconds
            elif time.perf_counter() > deadline:
                break
            for kind, (url, headers) in targets.items():
                body = (bodies or {}).get(kind, make_body)(i)
                start = time.perf_counter()
                await post_rpc(sessions[kind], url, headers, body, i)
                elapsed = (time.perf_counter() - start) * 1000
                if i >= warmup:
                    samples[kind].append(elapsed)
    stats = {}
    for kind, values in samples.items():
        values.sort()
        stats[kind] = LatencyStats(
            count=len(values),
            p50_ms=_percentile(values, 50),
            p90_ms=_percentile(values, 90),
            p99_ms=_percentile(values, 99),
            mean_ms=statistics.fmean(values) if values else float("nan"),
        )
    return stats


async def http_load(
    url: str, worker_headers: Sequence[dict[str, str]], duration: float, make_body: BodyFactory, tool: str
) -> ThroughputStats:
    """One worker per entry of ``worker_headers``, each sending requests back to back until ``duration``."""
    counter = _Counter()
    ids = itertools.count(1)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker(headers: dict[str, str], deadline: float) -> None:
            while time.perf_counter() < deadline:
                request_id = next(ids)
                start = time.perf_counter()
                try:
                    await post_rpc(session, url, headers, make_body(request_id), request_id)
                except (RpcError, aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                    counter.fail(exc)
                    continue
                counter.ok += 1
                counter.latencies_ms.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        deadline = start + duration
        await asyncio.gather(*(worker(headers, deadline) for headers in worker_headers))
        elapsed = time.perf_counter() - start
    counter.latencies_ms.sort()
    return ThroughputStats(
        tool=tool,
        ok=counter.ok,
        errors=counter.errors,
        seconds=elapsed,
        p50_ms=_percentile(counter.latencies_ms, 50),
        p99_ms=_percentile(counter.latencies_ms, 99),
        first_error=counter.first_error,
    )


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_seconds: float = 0.0  # wrk's own CPU time (user + system)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """wrk's CPU time per request, in microseconds."""
        return self.cpu_seconds / max(self.requests, 1) * 1e6

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def _run_timed(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str, float]:
    """Run `argv` to its end: (exit code, stdout, stderr, its own CPU seconds). The CPU is this one child's, from
    `wait4`, not every child reaped meanwhile; a run past `timeout` is killed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return proc.returncode, stdout, stderr, usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str,
    body: bytes,
    *,
    token: str | None,
    session_id: str | None,
    connections: int,
    threads: int,
    duration: float,
) -> WrkResult:
    """Run wrk with ``wrk_post.lua`` and parse its BENCH_RESULT line."""
    env = {
        **os.environ,
        "BENCH_BODY": body.decode(),
        "BENCH_TOKEN": token or "",
        "BENCH_SESSION_ID": session_id or "",
    }
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    returncode, stdout, stderr, cpu = _run_timed(argv, env, timeout=duration + 60)
    match = re.search(r"^BENCH_RESULT (.*)$", stdout, re.MULTILINE)
    if returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    values = {key: int(value) for key, value in (item.split("=") for item in match.group(1).split())}
    return WrkResult(
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        status_errors=values["status_errors"],
        socket_errors=values["socket_errors"],
        p50_ms=values["p50_us"] / 1000,
        p90_ms=values["p90_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        cpu_seconds=cpu,
    )


# --------------------------------------------------------------------------- direct stdio


class StdioPeer:
    """A stdio MCP server driven directly with newline-delimited JSON-RPC."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def start(cls, argv: Sequence[str]) -> StdioPeer:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        peer = cls(proc)
        await peer.request("initialize", initialize_request()["params"])
        await peer._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return peer

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            message = orjson.loads(line)
            request_id = message.get("id") if isinstance(message, dict) else None
            future = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(message)
        for future in list(self._pending.values()):  # only futures a request() is still waiting for
            if not future.done():
                future.set_exception(RpcError("stdio server closed its stdout"))

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps(message) + b"\n")
        await self._proc.stdin.drain()

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            response = await asyncio.wait_for(future, timeout=30)
        finally:
            self._pending.pop(request_id, None)
        if "result" not in response:
            raise RpcError(f"JSON-RPC error: {response.get('error')}")
        return response

    async def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=5)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def stdio_load(
    argv: Sequence[str], processes: int, inflight: int, duration: float, warmup: float = 0.0
) -> ThroughputStats:
    """``processes`` stdio servers, each with ``inflight`` concurrent tools/call workers, for ``duration``.

    The same processes first run the same load for ``warmup`` seconds, unmeasured.
    """
    peers: list[StdioPeer] = []
    counter = _Counter()
    params = {"name": "echo", "arguments": {"text": "hello"}}
    try:
        outcomes = await asyncio.gather(*(StdioPeer.start(argv) for _ in range(processes)), return_exceptions=True)
        peers.extend(peer for peer in outcomes if isinstance(peer, StdioPeer))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

        async def worker(peer: StdioPeer, deadline: float, counter: _Counter) -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    await peer.request("tools/call", params)
                except (RpcError, TimeoutError) as exc:
                    counter.fail(exc)
                    continue
                counter.ok += 1
                counter.latencies_ms.append((time.perf_counter() - start) * 1000)

        if warmup > 0:
            deadline = time.perf_counter() + warmup
            await asyncio.gather(*(worker(peer, deadline, _Counter()) for peer in peers for _ in range(inflight)))
        cpu_before = cpu_seconds(peer.pid for peer in peers)
        start = time.perf_counter()
        deadline = start + duration
        await asyncio.gather(*(worker(peer, deadline, counter) for peer in peers for _ in range(inflight)))
        elapsed = time.perf_counter() - start
        server_cpu = cpu_seconds(peer.pid for peer in peers) - cpu_before
    finally:
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
    counter.latencies_ms.sort()
    return ThroughputStats(
        tool="python stdio client",
        ok=counter.ok,
        errors=counter.errors,
        seconds=elapsed,
        p50_ms=_percentile(counter.latencies_ms, 50),
        p99_ms=_percentile(counter.latencies_ms, 99),
        first_error=counter.first_error,
        server_cpu_s=server_cpu,
    )
