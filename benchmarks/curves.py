"""Cost curves (issue 19): how the gateway's cost grows with the work, each curve against its direct counterpart.

    python benchmarks/curves.py                       # every curve, about 3.5 minutes on 2 cores
    python benchmarks/curves.py --quick               # fewer samples, about 1.5 minutes
    python benchmarks/curves.py --only tools,startup  # policies, tools, backends, sessions, startup
    python benchmarks/curves.py --png DIR             # also DIR/<curve>.png (needs matplotlib)

1. policies: `hivegate run URL --authz-config` (JWT on, N Cedar policies from `authz_policies.py`) for N = 5 .. 5000,
   beside the same gateway without authz and the backend asked directly: `tools/call` p50 (all targets asked in turn,
   one call each) and the gateway process's CPU per call (4 calls in flight on one session, each target in turn);
   in this process, one decision over the whole set (no slicing, nothing remembered) and loading the policies.
2. tools: one backend endpoint listing N tools (10 .. 5000), `hivegate run URL --anonymous` in front of each:
   `tools/list` p50, gateway and direct asked in turn, and the gateway's CPU per list.
3. backends: `hivegate vmcp serve` over B HTTP backends (1 .. 50, 10 tools each): `tools/list` p50 and CPU per list,
   beside one backend's own `tools/list`.
4. sessions: memory (RSS of the gateway + its backends) with 1 .. 1000 client sessions open, each of which called
   `echo`: `hivegate run URL` in front of an HTTP backend, and `hivegate run --stdio-sharing shared` in front of
   `stdio_minimal_server.py`; beside the gateway with no session and the backend alone.
5. startup: `hivegate vmcp serve` from process start to `/readyz` answering 200, over B backends (1 .. 50), with
   backends that answer at once and with backends whose `initialize` and `tools/list` take 50 ms each; beside
   `hivegate run URL` (one backend) started the same way.

Every HTTP backend is an endpoint of `multi_backend.py`: one Python process serves all of a curve's endpoints
(`/NAME/mcp`), so 50 backends cost one process, not 50; the gateways see 50 separate URLs with their own sessions.
Each curve prints a table, an ASCII plot (log x axis) and its slope; `curve_plot.py` does the printing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

import loadgen
from authz_policies import BENCH_GROUPS
from authz_policies import config as authz_config
from common import machine_line
from curve_plot import Series, ascii_plot, slope_line, table, write_png
from harness import BENCH_DIR, HOST, Identity, ManagedProcess, Processes, free_port, wait_for_port
from multi_backend import tools_result
from run import handle_signals, run_benches
from stdio_sessions_bench import Sessions, memory

CURVES = ("policies", "tools", "backends", "sessions", "startup")
SRC = str(BENCH_DIR.parent / "src")  # this checkout's hivegate, whatever the venv has installed
HIVEGATE = [sys.executable, "-m", "hivegate"]


@dataclass
class Options:
    quick: bool
    only: list[str]
    png: Path | None
    latency_seconds: float  # per curve, all its targets asked in turn
    load_seconds: float  # per target, for CPU per call
    starts: int  # start-ups per point of the startup curve (the fastest is kept: other work only slows a start)


@dataclass
class Curve:
    """One measured curve: a column per series over `xs`; `plotted` are drawn, `slopes` summarise them."""

    key: str
    title: str
    x_label: str
    xs: list[float]
    columns: dict[str, list[float]]
    plotted: dict[str, str]  # plot label -> column
    y_unit: str
    slopes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def print_curve(curve: Curve, png_dir: Path | None) -> None:
    print(f"\n== {curve.title}", flush=True)
    for line in table(curve.x_label, curve.xs, curve.columns):
        print(f"  {line}")
    print()
    series = [Series(label, curve.xs, curve.columns[column]) for label, column in curve.plotted.items()]
    for line in ascii_plot(series, curve.y_unit):
        print(f"  {line}")
    for line in curve.slopes:
        print(f"  slope: {line}")
    for note in curve.notes:
        print(f"  note: {note}")
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        saved = write_png(png_dir / f"{curve.key}.png", curve.title, series, curve.x_label, curve.y_unit)
        print(f"  png: {saved}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- processes


def start_backend(procs: Processes, name: str, endpoints: dict[str, int], delay_ms: float = 0) -> tuple[str, int]:
    """`multi_backend.py` serving `/NAME/mcp` for each endpoint; returns its base URL and pid."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "multi_backend.py"), "--port", str(port), "--delay-ms", str(delay_ms)]
    argv += [f"--endpoint={path}={tools}" for path, tools in endpoints.items()]
    proc = procs.start(name, argv)
    wait_for_port(port, timeout=30, proc=proc)
    return f"http://{HOST}:{port}", proc.pid


def start_run(procs: Processes, name: str, args: list[str]) -> tuple[str, ManagedProcess]:
    """`hivegate run --foreground` with `args` (auth options, then the backend); its MCP URL and process."""
    port = free_port()
    argv = [*HIVEGATE, "run", "--foreground", "--name", name, "--host", HOST, "--port", str(port),
            "--log-level", "warning", "--max-sessions", "5000", "--max-sessions-per-user", "5000",
            "--max-requests-per-user", "100000", *args]  # fmt: skip
    proc = procs.start(name, argv, env={"PYTHONPATH": SRC})
    return proc.wait_for_url(port, timeout=120), proc


def vmcp_config(name: str, base: str, backends: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "backends": [{"name": b, "url": f"{base}/{b}/mcp", "transport": "streamable-http"} for b in backends],
        "incomingAuth": {"type": "anonymous"},
        "aggregation": {"conflictResolution": "prefix"},
    }


def wait_ready(base: str, proc: ManagedProcess, timeout: float = 120) -> float:
    """Poll `base/readyz` every 5 ms until it answers 200; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:  # noqa: S310 - loopback only
                if resp.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        time.sleep(0.005)
    raise TimeoutError(f"{proc.name}: /readyz not 200 after {timeout:.0f} s:\n{proc.tail()}")


def start_vmcp(procs: Processes, name: str, config: dict[str, Any]) -> tuple[str, ManagedProcess, float]:
    """`hivegate vmcp serve`; its MCP URL, process and seconds from spawning it to `/readyz` answering 200."""
    path = procs.log_dir / f"{name}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [*HIVEGATE, "vmcp", "serve", "--config", str(path), "--host", HOST, "--port", str(port)]
    spawned = time.monotonic()
    proc = procs.start(name, [*argv, "--log-level", "warning"], env={"PYTHONPATH": SRC})
    ready = wait_ready(f"http://{HOST}:{port}", proc)
    return f"http://{HOST}:{port}/mcp", proc, ready - spawned


# --------------------------------------------------------------------------- measuring


def cpu_s(pid: int) -> float:
    """CPU seconds `pid`'s live threads have run, in nanoseconds' resolution (`/proc/PID/task/*/schedstat`): clock
    ticks (`harness.cpu_seconds`, 10 ms) are too coarse for the few hundred requests a slow point gets."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended meanwhile
            total += int(task.read_text().split()[0])
    return total / 1e9


async def session(url: str, token: str | None) -> dict[str, str]:
    """Open an MCP session on `url`; the headers of its requests."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        sid = await loadgen.mcp_initialize(http, url, token)
    return loadgen.request_headers(token, sid)


def list_body(request_id: int) -> bytes:
    return loadgen.tools_list(request_id)


async def count_tools(url: str, headers: dict[str, str]) -> int:
    status, content_type, body = await loadgen.probe(url, headers, loadgen.tools_list(1))
    if status != 200:
        raise RuntimeError(f"tools/list to {url}: HTTP {status}: {body[:200]!r}")
    return len(loadgen.parse_rpc_body(content_type, body, 1)["result"]["tools"])


async def check_echo(url: str, headers: dict[str, str]) -> None:
    status, content_type, body = await loadgen.probe(url, headers, loadgen.tools_call(1, text="curve"))
    if status != 200:
        raise RuntimeError(f"tools/call to {url}: HTTP {status}: {body[:200]!r}")
    text = loadgen.parse_rpc_body(content_type, body, 1)["result"]["content"][0]["text"]
    if text != "curve":
        raise RuntimeError(f"tools/call to {url} answered {text!r}")


async def paired(
    targets: dict[str, tuple[str, dict[str, str]]], body: loadgen.BodyFactory, seconds: float, pids: dict[str, int]
) -> tuple[dict[str, float], dict[str, float]]:
    """All targets asked in turn, one request each, for `seconds` (after 20 rounds of warm-up): p50 ms per target,
    and CPU µs per request of `pids[target]` (every request of the run counted: each target got the same number).

    The time is the request's until its last byte is read: an answer is parsed (its id and `result` checked) once
    per target before the run, then only its status and size are checked, so a large `tools/list` is not timed
    with the client's own JSON parsing (`orjson` takes ~8-25 ms for 5000 tools here; `client_parse_ms`)."""
    timeout = aiohttp.ClientTimeout(total=60)
    samples: dict[str, list[float]] = {kind: [] for kind in targets}
    async with contextlib.AsyncExitStack() as stack:
        http = {kind: await stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1), timeout=timeout)) for kind in targets}  # fmt: skip
        sizes = {}
        for kind, (url, headers) in targets.items():
            async with http[kind].post(url, data=body(0), headers=headers) as resp:
                payload = await resp.read()
                loadgen.parse_rpc_body(resp.headers.get("Content-Type", ""), payload, 0)
            sizes[kind] = len(payload)
        before = {kind: cpu_s(pid) for kind, pid in pids.items()}
        rounds, deadline = 0, time.perf_counter() + seconds
        while rounds < 20 or time.perf_counter() < deadline:
            rounds += 1
            for kind, (url, headers) in targets.items():
                started = time.perf_counter()
                async with http[kind].post(url, data=body(rounds), headers=headers) as resp:
                    payload = await resp.read()
                if resp.status != 200 or len(payload) < sizes[kind] - 16:
                    raise RuntimeError(f"{kind}: HTTP {resp.status}, {len(payload)} bytes: {payload[:200]!r}")
                if rounds > 20:
                    samples[kind].append((time.perf_counter() - started) * 1000)
    cpu = {kind: (cpu_s(pid) - before[kind]) / rounds * 1e6 for kind, pid in pids.items()}
    return {kind: statistics.median(values) for kind, values in samples.items()}, cpu


def client_parse_ms(payload: bytes, times: int = 5) -> float:
    """What parsing `payload` with orjson takes this process, median of `times`."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        orjson.loads(payload)
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


async def cpu_per_call(url: str, headers: dict[str, str], pid: int, seconds: float, inflight: int = 4) -> float:
    """`inflight` `tools/call`s at a time on one session for `seconds`: CPU µs per call of process `pid`."""
    await loadgen.http_load(url, [headers] * inflight, min(1.0, seconds / 2), loadgen.tools_call, "warm-up")
    before = cpu_s(pid)
    stats = await loadgen.http_load(url, [headers] * inflight, seconds, loadgen.tools_call, "aiohttp")
    if stats.errors:
        raise RuntimeError(f"{url}: {stats.errors} failed calls, first: {stats.first_error}")
    return (cpu_s(pid) - before) / max(1, stats.ok) * 1e6


# --------------------------------------------------------------------------- 1. policies


def engine_us(policies: int, decisions: int = 200) -> tuple[float, float]:
    """In this process: one `echo` decision's p50 µs with the whole policy set evaluated (no slicing, nothing
    remembered), and loading the policies (ms): what the gateway's slicing and its per-caller memo avoid."""
    if SRC not in sys.path:  # this checkout's hivegate, as the gateways run it
        sys.path.insert(0, SRC)
    from hivegate.authz import CedarAuthorizer, parse_authz_config
    from hivegate.core.principal import Principal

    cfg = parse_authz_config(authz_config(policies))
    started = time.perf_counter()
    full = CedarAuthorizer.from_config(cfg, "bench", slicing=False)
    load_ms = (time.perf_counter() - started) * 1000
    who = Principal("bench-user", "http://issuer", "jwt", {"sub": "bench-user", "groups": BENCH_GROUPS})
    spent = []
    for _ in range(decisions):
        started = time.perf_counter()
        full.decide(who, "call_tool", "echo", arguments={"text": "hello"})
        spent.append((time.perf_counter() - started) * 1e6)
    return statistics.median(spent), load_ms


async def curve_policies(opts: Options, procs: Processes) -> Curve:
    counts = [5, 50, 500, 5000]
    base, backend_pid = start_backend(procs, "policies-backend", {"echo": 1})
    backend = f"{base}/echo/mcp"
    identity = Identity.start(procs)
    token = identity.mint(groups=BENCH_GROUPS)
    gateways: dict[str, tuple[str, ManagedProcess]] = {}
    startup: dict[str, float] = {}
    for n in [0, *counts]:
        extra: list[str] = []
        if n:
            path = procs.log_dir / f"authz-{n}.json"
            path.write_text(json.dumps(authz_config(n)))
            extra = ["--authz-config", str(path)]
        spawned = time.monotonic()
        gateways[str(n)] = start_run(procs, f"gateway-policies-{n}", [*identity.gateway_args(), *extra, backend])
        startup[str(n)] = time.monotonic() - spawned
    targets = {"direct": (backend, await session(backend, None))}
    for n, (url, _) in gateways.items():
        targets[n] = (url, await session(url, token))
    for url, headers in targets.values():
        await check_echo(url, headers)
    pids = {n: proc.pid for n, (_, proc) in gateways.items()}
    p50, _ = await paired(targets, loadgen.tools_call, opts.latency_seconds, pids)
    cpu = {n: await cpu_per_call(*targets[n], pid, opts.load_seconds) for n, pid in pids.items()}
    direct_cpu = await cpu_per_call(*targets["direct"], backend_pid, opts.load_seconds)
    engines = {n: engine_us(n) for n in counts}
    xs = [float(n) for n in counts]
    columns = {
        "p50 ms": [p50[str(n)] for n in counts],
        "added p50 ms": [p50[str(n)] - p50["direct"] for n in counts],
        "gateway CPU us/call": [cpu[str(n)] for n in counts],
        "vs no authz us": [cpu[str(n)] - cpu["0"] for n in counts],
        "start ms": [startup[str(n)] * 1000 for n in counts],
        "engine, full set us": [engines[n][0] for n in counts],
        "load ms": [engines[n][1] for n in counts],
    }
    curve = Curve("policies", "tools/call cost against Cedar policies (hivegate run, JWT on)", "policies", xs,
                  columns, {"gateway CPU us/call": "gateway CPU us/call"}, "us of gateway CPU per call")  # fmt: skip
    curve.slopes = [
        slope_line("gateway CPU per call", xs, columns["gateway CPU us/call"], "us", 1000, "1000 policies"),
        slope_line("p50", xs, columns["p50 ms"], "ms", 1000, "1000 policies"),
        slope_line("gateway start (to its URL)", xs, columns["start ms"], "ms", 1000, "1000 policies"),
        slope_line(
            "one decision, whole set, in-process", xs, columns["engine, full set us"], "us", 1000, "1000 policies"
        ),
    ]
    curve.notes = [
        f"counterparts: direct p50 {p50['direct']:.3f} ms (backend CPU {direct_cpu:.0f} us/call); no authz p50 "
        f"{p50['0']:.3f} ms, gateway CPU {cpu['0']:.0f} us/call, start {startup['0'] * 1000:.0f} ms",
        "the same caller repeats the same call: after the first, the gateway's decision comes from the caller's memo "
        "(a lookup) over the slice of policies that can apply to `echo`; `engine, full set` is one decision over every "
        "policy in this process, with nothing remembered (`authz_bench.py` compares sliced and full in detail); "
        "`load ms` parses the policies in this process, `start ms` is the gateway's spawn to its printed URL",
    ]
    return curve


# --------------------------------------------------------------------------- 2. tools


async def curve_tools(opts: Options, procs: Processes) -> Curve:
    counts = [10, 100, 1000, 5000]
    base, _ = start_backend(procs, "tools-backend", {f"t{n}": n for n in counts})
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    pids: dict[str, int] = {}
    for n in counts:
        direct = f"{base}/t{n}/mcp"
        url, proc = start_run(procs, f"gateway-tools-{n}", ["--anonymous", direct])
        targets[f"direct {n}"] = (direct, await session(direct, None))
        targets[f"gateway {n}"] = (url, await session(url, None))
        pids[f"gateway {n}"] = proc.pid
        for kind in (f"direct {n}", f"gateway {n}"):
            if (got := await count_tools(*targets[kind])) != n:
                raise RuntimeError(f"{kind}: tools/list has {got} tools, expected {n}")
    p50, cpu = await paired(targets, list_body, opts.latency_seconds, pids)
    xs = [float(n) for n in counts]
    columns = {
        "direct p50 ms": [p50[f"direct {n}"] for n in counts],
        "gateway p50 ms": [p50[f"gateway {n}"] for n in counts],
        "added ms": [p50[f"gateway {n}"] - p50[f"direct {n}"] for n in counts],
        "gateway CPU us/list": [cpu[f"gateway {n}"] for n in counts],
        "CPU us/tool": [cpu[f"gateway {n}"] / n for n in counts],
        "client parse ms": [client_parse_ms(tools_result(n)) for n in counts],
    }
    curve = Curve("tools", "tools/list time against the tools one backend lists (hivegate run URL)", "tools", xs,
                  columns, {"direct": "direct p50 ms", "gateway": "gateway p50 ms"}, "ms, p50")  # fmt: skip
    curve.slopes = [
        slope_line("gateway p50", xs, columns["gateway p50 ms"], "ms", 1000, "1000 tools"),
        slope_line("direct p50", xs, columns["direct p50 ms"], "ms", 1000, "1000 tools"),
        slope_line("gateway CPU per list", xs, columns["gateway CPU us/list"], "us", 1, "tool"),
    ]
    above = (cpu[f"gateway {counts[-1]}"] - cpu[f"gateway {counts[-2]}"]) / (counts[-1] - counts[-2])
    below = (cpu[f"gateway {counts[-2]}"] - cpu[f"gateway {counts[0]}"]) / (counts[-2] - counts[0])
    curve.notes = [
        f"gateway CPU per added tool: {below:.2f} us from {counts[0]} to {counts[-2]} tools, {above:.2f} us from "
        f"{counts[-2]} to {counts[-1]}; compare `client parse ms` per tool",
        "p50: until the answer's last byte; `client parse ms` is what parsing it (orjson, in this process) adds for a "
        "client, not timed in the p50s",
    ]
    return curve


# --------------------------------------------------------------------------- 3. backends


async def curve_backends(opts: Options, procs: Processes) -> Curve:
    counts = [1, 5, 10, 25, 50]
    per_backend = 10
    names = [f"b{i}" for i in range(max(counts))]
    base, _ = start_backend(procs, "vmcp-backends", dict.fromkeys(names, per_backend))
    direct = f"{base}/b0/mcp"
    targets = {"direct": (direct, await session(direct, None))}
    pids: dict[str, int] = {}
    for n in counts:
        url, proc, _ = start_vmcp(procs, f"vmcp-{n}", vmcp_config(f"curve-{n}", base, names[:n]))
        targets[str(n)] = (url, await session(url, None))
        pids[str(n)] = proc.pid
        if (got := await count_tools(*targets[str(n)])) != n * per_backend:
            raise RuntimeError(f"vMCP over {n} backends lists {got} tools, expected {n * per_backend}")
    p50, cpu = await paired(targets, list_body, opts.latency_seconds, pids)
    xs = [float(n) for n in counts]
    columns = {
        "tools": [float(n * per_backend) for n in counts],
        "vMCP p50 ms": [p50[str(n)] for n in counts],
        "vMCP CPU us/list": [cpu[str(n)] for n in counts],
        "CPU us/backend": [cpu[str(n)] / n for n in counts],
    }
    curve = Curve("backends", f"vMCP tools/list time against HTTP backends ({per_backend} tools each)", "backends",
                  xs, columns, {"vMCP p50": "vMCP p50 ms"}, "ms, p50")  # fmt: skip
    curve.slopes = [
        slope_line("vMCP p50", xs, columns["vMCP p50 ms"], "ms", 10, "10 backends"),
        slope_line("vMCP CPU per list", xs, columns["vMCP CPU us/list"], "us", 1, "backend"),
    ]
    curve.notes = [
        f"counterpart: one backend's own tools/list ({per_backend} tools), asked directly: p50 {p50['direct']:.3f} ms",
        "the vMCP answers tools/list from the catalog it built at start-up; a list does not ask the backends",
        "all backends are endpoints of one multi_backend.py process",
    ]
    return curve


# --------------------------------------------------------------------------- 4. sessions


async def sessions_curve(
    url: str, gateway_pid: int, backend_pid: int, counts: list[int], gateway_only: list[float]
) -> list[float]:
    """RSS MB (the gateway and its children + the backend process) after opening each count of sessions; the
    gateway's own figure (with its children) is appended to `gateway_only`."""
    opened = Sessions(url, concurrency=50)
    out: list[float] = []
    try:
        for count in counts:
            await opened.open(count - len(opened.ids))
            await opened.call_all()
            if opened.failed:
                raise RuntimeError(f"{opened.failed} session calls failed through {url}: {opened.first_error}")
            gateway_only.append(memory(gateway_pid)[1])
            out.append(gateway_only[-1] + (memory(backend_pid)[1] if backend_pid else 0.0))
    finally:
        await opened.close()
    return out


async def curve_sessions(opts: Options, procs: Processes) -> Curve:
    counts = [1, 10, 100, 1000]
    base, backend_pid = start_backend(procs, "sessions-backend", {"echo": 1})
    backend_alone = memory(backend_pid)[1]
    http_url, http_gw = start_run(procs, "gateway-sessions-http", ["--anonymous", f"{base}/echo/mcp"])
    stdio_argv = [sys.executable, str(BENCH_DIR / "stdio_minimal_server.py")]
    stdio_url, stdio_gw = start_run(procs, "gateway-sessions-stdio",
                                    ["--anonymous", "--stdio-sharing", "shared", "--", *stdio_argv])  # fmt: skip
    empty_http, empty_stdio = memory(http_gw.pid)[1], memory(stdio_gw.pid)[1]
    http_gateway: list[float] = []
    http_mb = await sessions_curve(http_url, http_gw.pid, backend_pid, counts, http_gateway)
    with urllib.request.urlopen(f"{base}/stats", timeout=10) as resp:  # noqa: S310 - loopback only
        backend_sessions = json.loads(resp.read())["sessions"]
    if backend_sessions < max(counts):
        raise RuntimeError(f"the HTTP backend saw {backend_sessions} sessions for {max(counts)} client sessions")
    stdio_mb = await sessions_curve(stdio_url, stdio_gw.pid, 0, counts, [])
    xs = [float(n) for n in counts]
    columns = {
        "HTTP: gateway MB": http_gateway,
        "HTTP: + backend MB": http_mb,
        "stdio shared: gateway + server MB": stdio_mb,
    }
    plotted = {"HTTP: gateway + backend": "HTTP: + backend MB", "stdio shared": "stdio shared: gateway + server MB"}
    title = "memory (RSS, gateway + backends) against open client sessions (hivegate run)"
    curve = Curve("sessions", title, "sessions", xs, columns, plotted, "MB RSS")
    curve.slopes = [
        slope_line("HTTP backend, gateway + backend", xs, http_mb, "MB", 1000, "1000 sessions"),
        slope_line("stdio shared", xs, stdio_mb, "MB", 1000, "1000 sessions"),
    ]
    curve.notes = [
        f"counterparts: gateway with no session {empty_http:.0f} MB (HTTP) / {empty_stdio:.0f} MB (stdio, its server "
        f"process included); multi_backend.py alone {backend_alone:.0f} MB",
        "every session did initialize + notifications/initialized and called echo (its text checked) at each step; "
        f"the HTTP backend saw {backend_sessions} sessions opened (one per client session)",
    ]
    return curve


# --------------------------------------------------------------------------- 5. startup


async def curve_startup(opts: Options, procs: Processes) -> Curve:
    counts = [1, 5, 10, 25, 50]
    delay_ms = 50
    names = [f"b{i}" for i in range(max(counts))]
    fast, _ = start_backend(procs, "startup-fast", dict.fromkeys(names, 10))
    slow, _ = start_backend(procs, "startup-slow", dict.fromkeys(names, 10), delay_ms=delay_ms)
    _, proc, _ = start_vmcp(procs, "startup-warm-up", vmcp_config("startup", fast, names[:1]))  # disk cache, .pyc
    procs.stop(proc)
    starts: dict[tuple[str, int], list[float]] = {}
    for i in range(opts.starts):  # round after round over every point, so a burst of other work hits one round
        for n in counts:
            for kind, base in (("fast", fast), ("slow", slow)):
                _, proc, took = start_vmcp(procs, f"startup-{kind}-{n}-{i}", vmcp_config("startup", base, names[:n]))
                procs.stop(proc)
                starts.setdefault((kind, n), []).append(took * 1000)
    results = {kind: [min(starts[(kind, n)]) for n in counts] for kind in ("fast", "slow")}
    run_seconds = []
    for i in range(opts.starts):
        port = free_port()
        argv = [*HIVEGATE, "run", "--foreground", "--anonymous", "--host", HOST, "--port", str(port),
                "--log-level", "warning", f"{fast}/b0/mcp"]  # fmt: skip
        spawned = time.monotonic()
        proc = procs.start(f"startup-run-{i}", argv, env={"PYTHONPATH": SRC})
        run_seconds.append((wait_ready(f"http://{HOST}:{port}", proc) - spawned) * 1000)
        procs.stop(proc)
    xs = [float(n) for n in counts]
    columns = {
        "fast backends ms": results["fast"],
        f"{delay_ms} ms backends ms": results["slow"],
        "difference ms": [s - f for s, f in zip(results["slow"], results["fast"], strict=True)],
    }
    plotted = {"fast": "fast backends ms", f"{delay_ms} ms": f"{delay_ms} ms backends ms"}
    title = "vMCP start-up (process start -> /readyz 200) against HTTP backends"
    curve = Curve("startup", title, "backends", xs, columns, plotted, "ms")
    curve.slopes = [
        slope_line("fast backends", xs, results["fast"], "ms", 1, "backend"),
        slope_line(f"{delay_ms} ms backends", xs, results["slow"], "ms", 1, "backend"),
    ]
    curve.notes = [
        f"fastest of {opts.starts} starts per point (in rounds over all points); counterpart: hivegate run URL (one "
        f"backend) {min(run_seconds):.0f} ms",
        f"if the vMCP asked its backends one after another, {delay_ms} ms backends would add >= {2 * delay_ms} ms per "
        "backend (initialize, then tools/list); in parallel they add about the same at every count",
    ]
    return curve


# --------------------------------------------------------------------------- main

CurveFn = Callable[[Options, Processes], Coroutine[Any, Any, Curve]]
FUNCTIONS: dict[str, CurveFn] = {
    "policies": curve_policies,
    "tools": curve_tools,
    "backends": curve_backends,
    "sessions": curve_sessions,
    "startup": curve_startup,
}


def parse_args() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about half the time)")
    parser.add_argument("--only", default=",".join(CURVES), help=f"comma-separated subset of {', '.join(CURVES)}")
    parser.add_argument("--png", type=Path, metavar="DIR", help="also write DIR/<curve>.png (needs matplotlib)")
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    unknown = [name for name in only if name not in CURVES]
    if unknown or not only:
        parser.error(f"--only: expected some of {', '.join(CURVES)}, got {args.only!r}")
    return Options(quick=args.quick, only=only, png=args.png, latency_seconds=4.0 if args.quick else 10.0,
                   load_seconds=1.5 if args.quick else 3.0, starts=1 if args.quick else 3)  # fmt: skip


def main() -> int:
    opts = parse_args()
    handle_signals()
    load_start, started = os.getloadavg()[0], time.perf_counter()
    curves: list[Curve] = []
    errors: list[str] = []
    with Processes() as procs:
        print(f"logs: {procs.log_dir}", file=sys.stderr)

        def job(name: str) -> Callable[[], Coroutine[Any, Any, None]]:
            async def measure() -> None:
                curve = await FUNCTIONS[name](opts, procs)
                curves.append(curve)
                print_curve(curve, opts.png)

            return measure

        run_benches(procs, {name: job(name) for name in CURVES}, ",".join(opts.only), errors)
    print(f"\n{machine_line(load_start, os.getloadavg()[0])}")
    for curve in curves:
        for line in curve.slopes:
            print(f"  {curve.key}: {line}")
    for error in errors:
        print(f"  ERROR: {error}")
    print(f"  (total {time.perf_counter() - started:.0f} s{', --quick' if opts.quick else ''})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
