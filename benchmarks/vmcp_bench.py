"""The virtual MCP server (``hivegate vmcp serve``) side by side with what it is measured against; prints ratios.

    python benchmarks/vmcp_bench.py [--quick] [--only abc] [--json PATH] [--strict]

(a) One stdio backend behind ``hivegate vmcp serve`` and behind ``hivegate run --foreground``, both without
    authentication: tools/call p50 latency at 1 connection and tools/call/s at several sessions.
    Target: through the vMCP a call costs <= 1.1x what it costs through ``hivegate run``.
(b) ``tools/list`` of a vMCP over 10 backends that each take 20 ms to answer ``tools/list``: the first list of a
    freshly started vMCP (cold) <= 30 ms, then p50 at 1 connection (warm) <= 2 ms; with the backends' own log of
    when they were listed (at start-up and at each health check).
(c) The vMCP against FastMCP's multi-server proxy (``fastmcp run mcp.json --transport http``, in its own virtual
    environment under ``benchmarks/.peers``), the same two stdio backends: tools/call/s at N sessions >= 10x.

Every process listens on 127.0.0.1 and is stopped at the end, even on error. Until ``hivegate vmcp serve`` exists the
vMCP columns say so, and the ``hivegate run`` and FastMCP figures are still measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

import fastmcp_peer
import loadgen
from common import LoadSettings, Report, begin, finish, print_report
from harness import BENCH_DIR, HOST, ManagedProcess, Processes, cpu_seconds, descendants, free_port, wait_for_port
from run import find_hivegate, fmt_ms, fmt_rate, handle_signals, run_benches, verdict

TARGET_COST_RATIO = 1.1  # (a) vMCP / hivegate run, latency and time per call
TARGET_COLD_MS = 30.0  # (b) first tools/list of a fresh vMCP
TARGET_WARM_MS = 2.0  # (b) tools/list p50 afterwards
TARGET_FASTMCP_RATIO = 10.0  # (c) vMCP calls/s / FastMCP proxy calls/s
VMCP_UNAVAILABLE = "hivegate vmcp serve not available"
BACKENDS = {
    "minimal": [sys.executable, str(BENCH_DIR / "stdio_minimal_server.py")],
    "sdk": [sys.executable, str(BENCH_DIR / "stdio_echo_server.py")],
}


@dataclass
class Options(LoadSettings):
    rounds: int
    sessions: list[int]
    fastmcp_sessions: int
    cold_runs: int
    list_backends: int
    list_delay_ms: float
    list_tools: int
    backend_name: str
    hivegate: list[str] | None
    run_problem: str | None
    vmcp_problem: str | None
    fastmcp_venv: Path
    fastmcp_requirement: str

    @property
    def backend(self) -> list[str]:
        return BACKENDS[self.backend_name]


@dataclass
class Row:
    figure: str
    baseline: str
    vmcp: str
    compare: str
    target: str
    verdict: str


@dataclass
class Load:
    """Several measured runs of the same load against one target, added up."""

    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0  # the server process itself, its children excluded
    p50s_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    def add(self, stats: loadgen.ThroughputStats, cpu_s: float) -> None:
        self.ok, self.errors, self.seconds = (
            self.ok + stats.ok,
            self.errors + stats.errors,
            self.seconds + stats.seconds,
        )
        self.server_cpu_s += cpu_s
        self.p50s_ms.append(stats.p50_ms)
        self.first_error = self.first_error or stats.first_error

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float | None:
        return self.server_cpu_s / self.ok * 1e6 if self.ok else None


# --------------------------------------------------------------------------- processes and sessions


def cli_problem(hivegate: list[str] | None, *command: str) -> str | None:
    """None when ``hivegate COMMAND --help`` works, else why not."""
    if hivegate is None:
        return "no `hivegate` executable (is the package installed in the venv?)"
    argv = [*hivegate, *command, "--help"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`hivegate {' '.join(command)} --help` failed: {exc}"
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["?"]
        return f"`hivegate {' '.join(command)} --help` exited {done.returncode}: {last[0]}"
    return None


def vmcp_config(name: str, backends: dict[str, list[str]], health_interval: str = "30s") -> dict[str, Any]:
    """A vMCP config (ToolHive's keys): stdio backends, no authentication, prefixed tool names."""
    return {
        "name": name,
        "backends": [{"name": key, "command": argv[0], "args": argv[1:]} for key, argv in backends.items()],
        "incomingAuth": {"type": "anonymous"},
        "aggregation": {"conflictResolution": "prefix"},
        "operational": {"failureHandling": {"healthCheckInterval": health_interval}},
    }


@dataclass
class Started:
    url: str
    proc: ManagedProcess
    startup_s: float  # from spawning the process to its URL on stdout (polled every 50 ms)


def start_vmcp(procs: Processes, opts: Options, label: str, config: dict[str, Any]) -> Started:
    assert opts.hivegate is not None
    path = procs.log_dir / f"{label}.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    argv = [*opts.hivegate, "vmcp", "serve", "--config", str(path), "--host", HOST, "--port", str(port)]
    spawned = time.monotonic()
    proc = procs.start(label, [*argv, "--log-level", "warning"])
    url = proc.wait_for_output(re.compile(rf"http://{re.escape(HOST)}:{port}/mcp\b"), timeout=120).group(0)
    ready = time.monotonic()
    wait_for_port(port, timeout=30, proc=proc)
    return Started(url, proc, ready - spawned)


def start_run(procs: Processes, opts: Options, label: str, backend: list[str]) -> Started:
    """``hivegate run --foreground --anonymous`` in front of the stdio ``backend``."""
    assert opts.hivegate is not None
    port = free_port()
    argv = [*opts.hivegate, "run", "--foreground", "--anonymous", "--name", label, "--host", HOST, "--port", str(port)]
    spawned = time.monotonic()
    proc = procs.start(label, [*argv, "--log-level", "warning", "--", *backend])
    url = proc.wait_for_output(re.compile(rf"http://{re.escape(HOST)}:{port}/mcp\b"), timeout=60).group(0)
    ready = time.monotonic()
    wait_for_port(port, timeout=30, proc=proc)
    return Started(url, proc, ready - spawned)


def call_body(tool: str) -> loadgen.BodyFactory:
    def make(request_id: int) -> bytes:
        return loadgen.tools_call(request_id, tool=tool)

    return make


async def check_call(url: str, session_id: str | None, tool: str) -> None:
    """One tools/call must succeed before anything is measured."""
    status, content_type, body = await loadgen.probe(url, loadgen.request_headers(None, session_id), call_body(tool)(1))
    if status != 200:
        raise RuntimeError(f"sanity tools/call {tool} to {url}: HTTP {status}: {body[:300]!r}")
    result = loadgen.parse_rpc_body(content_type, body, 1)["result"]
    if result.get("isError"):
        raise RuntimeError(f"sanity tools/call {tool} to {url}: tool error {result}")


async def measured_load(
    url: str, session_ids: list[str | None], make_body: loadgen.BodyFactory, duration: float, pid: int
) -> tuple[loadgen.ThroughputStats, float]:
    """One worker per session for ``duration``; returns the stats and the server process's CPU seconds."""
    headers = [loadgen.request_headers(None, sid) for sid in session_ids]
    before = cpu_seconds([pid])
    stats = await loadgen.http_load(url, headers, duration, make_body, "aiohttp loadgen")
    return stats, cpu_seconds([pid]) - before


async def watch_children(pid: int, seen: set[int], stop: asyncio.Event) -> None:
    """Collect the pids of ``pid``'s descendants every 0.2 s until ``stop``: shows a proxy spawning per call."""
    while not stop.is_set():
        seen.update(descendants(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)


async def latency_blocks(
    urls: dict[str, str],
    headers: dict[str, dict[str, str]],
    bodies: dict[str, loadgen.BodyFactory],
    seconds: float,
    blocks: int,
) -> dict[str, list[loadgen.LatencyStats]]:
    """Sequential latency, one target at a time, ``blocks`` blocks each in the order A B B A A B ...; each target
    gets ``seconds`` in all."""
    runs: dict[str, list[loadgen.LatencyStats]] = {kind: [] for kind in urls}
    for block in range(blocks):
        for kind in list(urls) if block % 2 == 0 else list(reversed(urls)):
            stats = await loadgen.latency_run(urls[kind], headers[kind], bodies[kind], 100, 1_000_000, seconds / blocks)
            runs[kind].append(stats)
    return runs


def ping_body(request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()


def ratio_text(value: float | None, suffix: str = "x") -> str:
    return "n/a" if value is None else f"{value:.2f}{suffix}"


# --------------------------------------------------------------------------- (a) vMCP vs hivegate run


async def bench_overhead(opts: Options, procs: Processes, report: Report[Row]) -> None:
    """The same stdio backend behind ``hivegate run`` and behind a vMCP with that one backend."""
    targets: dict[str, tuple[Started, str]] = {}  # kind -> (process, tool name)
    if opts.run_problem is None:
        targets["run"] = (start_run(procs, opts, "run-a", opts.backend), "echo")
    else:
        report.notes.append(f"(a) hivegate run not measured: {opts.run_problem}")
    if opts.vmcp_problem is None:
        targets["vmcp"] = (start_vmcp(procs, opts, "vmcp-a", vmcp_config("bench-a", {"b1": opts.backend})), "b1_echo")
    else:
        report.notes.append(f"(a) {opts.vmcp_problem}: vMCP column not measured")
    if not targets:
        raise RuntimeError("neither `hivegate run` nor `hivegate vmcp serve` can be started")
    bodies = {kind: call_body(tool) for kind, (_, tool) in targets.items()}
    single: dict[str, str | None] = {}
    try:
        for kind, (started, tool) in targets.items():
            single[kind] = (await loadgen.open_sessions(started.url, None, 1))[0]
            await check_call(started.url, single[kind], tool)
        single_headers = {kind: loadgen.request_headers(None, sid) for kind, sid in single.items()}
        # One target at a time, in blocks A B B A ...: a client's calls back to back keep its gateway and backend
        # awake. The interleaved (paired) run below makes each process sleep while the other works, so both pay
        # the wake-ups: steadier against drift, but a fixed cost that dilutes the ratio.
        urls = {kind: started.url for kind, (started, _) in targets.items()}
        blocks = await latency_blocks(urls, single_headers, bodies, opts.latency_seconds, 2 * opts.rounds)
        # The same with a nice-19 busy loop keeping the cores out of their sleep states (as run.py (a)).
        spinner = procs.start("keep-awake", ["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
        try:
            awake = await latency_blocks(urls, single_headers, bodies, opts.latency_seconds / 2, 2)
        finally:
            procs.stop(spinner)
        paired = {kind: (targets[kind][0].url, headers) for kind, headers in single_headers.items()}
        latency = await loadgen.paired_latency_run(
            paired, loadgen.tools_call, 200, 1_000_000, opts.latency_seconds, bodies=bodies
        )
    finally:
        for kind, sid in single.items():
            await loadgen.close_sessions(targets[kind][0].url, None, [sid])
    loads: dict[int, dict[str, Load]] = {}
    for count in opts.sessions:
        opened: dict[str, list[str | None]] = {}
        loads[count] = {kind: Load() for kind in targets}
        try:
            for kind, (started, _) in targets.items():
                opened[kind] = await loadgen.open_sessions(started.url, None, count)
                await measured_load(started.url, opened[kind], bodies[kind], opts.warmup, started.proc.pid)
            for round_ in range(opts.rounds):  # alternate the order, so drift favours neither
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for kind in order:
                    started = targets[kind][0]
                    stats, cpu = await measured_load(
                        started.url, opened[kind], bodies[kind], opts.duration, started.proc.pid
                    )
                    loads[count][kind].add(stats, cpu)
        finally:
            for kind, sids in opened.items():
                await loadgen.close_sessions(targets[kind][0].url, None, sids)
    report.raw["a"] = {
        "backend": opts.backend_name,
        "latency_1conn_blocks": {kind: [asdict(stats) for stats in runs] for kind, runs in blocks.items()},
        "latency_1conn_blocks_awake": {kind: [asdict(stats) for stats in runs] for kind, runs in awake.items()},
        "latency_1conn_paired": {kind: asdict(stats) for kind, stats in latency.items()},
        "load": {
            count: {kind: {**asdict(load), "per_second": load.per_second} for kind, load in by_kind.items()}
            for count, by_kind in loads.items()
        },
    }

    def latency_row(label: str, r_ms: float | None, v_ms: float | None, target: bool) -> Row:
        ratio = v_ms / r_ms if r_ms and v_ms else None
        return Row(
            label,
            fmt_ms(r_ms),
            fmt_ms(v_ms),
            "n/a" if ratio is None or r_ms is None or v_ms is None else f"{ratio:.2f}x ({v_ms - r_ms:+.3f} ms)",
            f"<= {TARGET_COST_RATIO}x" if target else "-",
            verdict(None if ratio is None else ratio <= TARGET_COST_RATIO) if target else "-",
        )

    def block_ms(runs: list[loadgen.LatencyStats] | None, pct: str) -> float | None:
        if not runs:  # p50: the mean of the blocks' p50s; p99: the worst block's
            return None
        values = [getattr(stats, f"{pct}_ms") for stats in runs]
        return statistics.fmean(values) if pct == "p50" else max(values)

    for label, runs_by_kind, percentiles in (("", blocks, ("p50", "p99")), (", cores kept awake", awake, ("p50",))):
        n = min(sum(stats.count for stats in runs) for runs in runs_by_kind.values())
        rounds = len(next(iter(runs_by_kind.values())))
        for pct in percentiles:
            report.rows.append(
                latency_row(
                    f"(a) tools/call {pct} latency, 1 conn, {rounds} blocks each{label} (n>={n})",
                    block_ms(runs_by_kind.get("run"), pct),
                    block_ms(runs_by_kind.get("vmcp"), pct),
                    pct == "p50",
                )
            )
    run_lat, vmcp_lat = latency.get("run"), latency.get("vmcp")
    label = f"(a) tools/call p50 latency, 1 conn, interleaved (n={max(s.count for s in latency.values())})"
    report.rows.append(
        latency_row(label, run_lat.p50_ms if run_lat else None, vmcp_lat.p50_ms if vmcp_lat else None, False)
    )
    for count, by_kind in loads.items():
        run_load, vmcp_load = by_kind.get("run"), by_kind.get("vmcp")
        # Cost per call = 1 / calls per second: the vMCP costs run_rate / vmcp_rate times as much.
        cost = run_load.per_second / vmcp_load.per_second if run_load and vmcp_load and vmcp_load.per_second else None
        shape = f"{count} sessions x 1" if count > 1 else "1 session x 1"
        report.rows.append(
            Row(
                f"(a) tools/call/s, {shape} ({opts.rounds} x {opts.duration:g} s each)",
                fmt_rate(run_load.per_second if run_load else None),
                fmt_rate(vmcp_load.per_second if vmcp_load else None),
                "n/a" if cost is None else f"cost {cost:.2f}x",
                f"cost <= {TARGET_COST_RATIO}x",
                verdict(
                    None if cost is None or vmcp_load is None else cost <= TARGET_COST_RATIO and not vmcp_load.errors
                ),
            )
        )
        r_cpu = run_load.cpu_us if run_load else None
        v_cpu = vmcp_load.cpu_us if vmcp_load else None
        report.rows.append(
            Row(
                f"(a) CPU per call, gateway process, {shape}",
                "n/a" if r_cpu is None else f"{r_cpu:.0f} us",
                "n/a" if v_cpu is None else f"{v_cpu:.0f} us",
                ratio_text(v_cpu / r_cpu if r_cpu and v_cpu else None),
                "-",
                "-",
            )
        )
        for kind, load in by_kind.items():
            if load.errors:
                report.notes.append(f"(a) {shape} {kind}: {load.errors} failed calls, first: {load.first_error}")
    report.notes.append(
        f"(a) backend: {opts.backend_name} stdio server ({Path(opts.backend[-1]).name}), one child per client session "
        "in both; columns: baseline = hivegate run --foreground --anonymous, vMCP = vmcp serve with that one backend"
    )


# --------------------------------------------------------------------------- (b) tools/list over slow backends


@dataclass
class ListWindow:
    """A burst of tools/list seen by the backends: when the vMCP (re)listed them."""

    start: float
    end: float
    lists: int
    processes: int

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


def list_windows(path: Path, gap: float = 0.25) -> list[ListWindow]:
    """Group the backends' ``list <pid> <received> <answered>`` lines into bursts separated by ``gap`` seconds."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    entries = sorted((float(r), float(a), int(p)) for _, p, r, a in (line.split() for line in lines if line))
    windows: list[ListWindow] = []
    burst: list[tuple[float, float, int]] = []
    for entry in entries:
        if burst and entry[0] - max(e[1] for e in burst) > gap:
            windows.append(_window(burst))
            burst = []
        burst.append(entry)
    if burst:
        windows.append(_window(burst))
    return windows


def _window(burst: list[tuple[float, float, int]]) -> ListWindow:
    return ListWindow(min(e[0] for e in burst), max(e[1] for e in burst), len(burst), len({e[2] for e in burst}))


@dataclass
class ColdList:
    initialize_ms: float
    first_list_ms: float
    second_list_ms: float
    tools: int
    startup_s: float
    discovery: ListWindow | None


async def first_lists(url: str) -> tuple[float, float, float, int]:
    """On a new connection: initialize, then tools/list twice; each timed (ms); and the number of tools listed."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = time.perf_counter()
        sid = await loadgen.mcp_initialize(session, url, None)
        initialized = time.perf_counter()
        headers = loadgen.request_headers(None, sid)
        first, _ = await loadgen.post_rpc(session, url, headers, loadgen.tools_list(1), 1)
        listed = time.perf_counter()
        await loadgen.post_rpc(session, url, headers, loadgen.tools_list(2), 2)
        again = time.perf_counter()
        await loadgen.mcp_close(session, url, None, sid)
    ms = [(b - a) * 1000 for a, b in ((start, initialized), (initialized, listed), (listed, again))]
    return ms[0], ms[1], ms[2], len(first["result"]["tools"])


async def direct_list_ms(argv: list[str], count: int) -> float:
    """Median time of one backend's tools/list, asked straight over its stdin/stdout."""
    peer = await loadgen.StdioPeer.start(argv)
    try:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            await peer.request("tools/list", {})
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        await peer.close()
    return statistics.median(samples)


async def bench_lists(opts: Options, procs: Processes, report: Report[Row]) -> None:
    if opts.vmcp_problem is not None:
        report.rows.append(Row("(b) tools/list over slow backends (cold, warm)", "-", "n/a", "n/a", "-", "n/a"))
        report.notes.append(f"(b) not measured: {opts.vmcp_problem}")
        return
    server = [sys.executable, str(BENCH_DIR / "slow_list_server.py"), "--list-delay-ms", f"{opts.list_delay_ms:g}"]
    server += ["--tools", str(opts.list_tools)]
    expected = opts.list_backends * (1 + opts.list_tools)
    direct_ms = await direct_list_ms(server, 10)
    cold: list[ColdList] = []
    last: Started | None = None
    log = procs.log_dir / "lists.log"
    for run_index in range(opts.cold_runs):
        log = procs.log_dir / f"lists-{run_index}.log"
        backends = {f"s{i}": [*server, "--log", str(log)] for i in range(opts.list_backends)}
        # Health checks every second: the warm run below sees the vMCP re-list its backends while it is asked.
        config = vmcp_config(f"bench-lists-{run_index}", backends, health_interval="1s")
        if last is not None:
            procs.stop(last.proc)
        last = start_vmcp(procs, opts, f"vmcp-lists-{run_index}", config)
        init_ms, first_ms, second_ms, tools = await first_lists(last.url)
        if tools != expected:
            raise RuntimeError(f"tools/list of the vMCP has {tools} tools, expected {expected}")
        windows = list_windows(log)
        cold.append(ColdList(init_ms, first_ms, second_ms, tools, last.startup_s, windows[0] if windows else None))
    assert last is not None
    sid = (await loadgen.open_sessions(last.url, None, 1))[0]
    try:
        warm_from = time.monotonic()
        headers = loadgen.request_headers(None, sid)
        warm = await loadgen.latency_run(last.url, headers, loadgen.tools_list, 50, 1_000_000, opts.latency_seconds)
        warm_until = time.monotonic()
        # The floor: a request the vMCP answers itself with nothing to serialise.
        floor = await loadgen.latency_run(last.url, headers, ping_body, 50, 1_000_000, opts.latency_seconds / 2)
    finally:
        await loadgen.close_sessions(last.url, None, [sid])
    refreshes = [w for w in list_windows(log) if w.start >= warm_from and w.end <= warm_until]
    report.raw["b"] = {
        "backends": opts.list_backends,
        "list_delay_ms": opts.list_delay_ms,
        "tools": expected,
        "direct_one_backend_ms": direct_ms,
        "cold": [asdict(c) for c in cold],
        "warm": asdict(warm),
        "ping": asdict(floor),
        "refreshes_during_warm": [asdict(w) for w in refreshes],
    }

    firsts = [c.first_list_ms for c in cold]
    cold_ms = statistics.median(firsts)
    setup = f"{opts.list_backends} backends x {opts.list_delay_ms:g} ms, {expected} tools"
    report.rows.append(
        Row(
            f"(b) tools/list, first of a fresh vMCP (cold), median of {len(cold)} starts ({setup})",
            f"{direct_ms:.3f} ms",
            fmt_ms(cold_ms),
            f"max {max(firsts):.3f} ms",
            f"<= {TARGET_COLD_MS:g} ms",
            verdict(cold_ms <= TARGET_COLD_MS),
        )
    )
    report.rows.append(
        Row(
            f"(b) tools/list p50, 1 conn (warm, n={warm.count})",
            f"{direct_ms:.3f} ms",
            fmt_ms(warm.p50_ms),
            f"p99 {warm.p99_ms:.3f} ms",
            f"<= {TARGET_WARM_MS:g} ms",
            verdict(warm.p50_ms <= TARGET_WARM_MS),
        )
    )
    report.rows.append(
        Row(
            f"(b) ping p50, 1 conn, same session (floor, n={floor.count})",
            "-",
            fmt_ms(floor.p50_ms),
            f"list - ping {warm.p50_ms - floor.p50_ms:+.3f} ms",
            "-",
            "-",
        )
    )
    discovered = [c.discovery for c in cold if c.discovery is not None]
    if discovered:
        windows_ms = [w.ms for w in discovered]
        report.rows.append(
            Row(
                "(b) start-up listing of all backends, incl. their process start (backends' logs), median",
                f"{direct_ms:.3f} ms",
                fmt_ms(statistics.median(windows_ms)),
                f"{statistics.median(w.lists for w in discovered):.0f} lists, "
                f"serial >= {opts.list_backends * opts.list_delay_ms:g} ms",
                "-",
                "-",
            )
        )
    if refreshes:
        report.rows.append(
            Row(
                f"(b) re-listing by health checks during the warm run ({len(refreshes)}), median",
                f"{direct_ms:.3f} ms",
                fmt_ms(statistics.median(w.ms for w in refreshes)),
                f"max {max(w.ms for w in refreshes):.3f} ms",
                "-",
                "-",
            )
        )
    report.notes.append(
        "(b) baseline column = one backend's tools/list asked directly over stdio (median of 10). The vMCP lists "
        "every backend at start-up, before it prints its URL, and serves tools/list from that catalog: 'cold' is the "
        "first tools/list after start-up (on a new connection, after initialize), so it never waits for a backend. "
        "Nothing in the CLI or config forces a re-list on demand (it happens at each health check and on a "
        "backend's list_changed); the listing rows show what one costs, measured by the backends themselves"
    )
    report.notes.append(
        "(b) fresh starts: initialize "
        + ", ".join(f"{c.initialize_ms:.1f}" for c in cold)
        + " ms; first tools/list "
        + ", ".join(f"{c.first_list_ms:.2f}" for c in cold)
        + " ms; second "
        + ", ".join(f"{c.second_list_ms:.2f}" for c in cold)
        + " ms; spawn to URL printed "
        + ", ".join(f"{c.startup_s:.2f}" for c in cold)
        + " s"
    )


# --------------------------------------------------------------------------- (c) vMCP vs FastMCP proxy


async def bench_fastmcp(opts: Options, procs: Processes, report: Report[Row]) -> None:
    servers = {"b1": opts.backend, "b2": opts.backend}
    targets: dict[str, Started] = {}
    tool = "b1_echo"  # both prefix each server's tools with its name
    try:
        version = fastmcp_peer.ensure_venv(opts.fastmcp_venv, opts.fastmcp_requirement)
        url, proc = fastmcp_peer.start_proxy(procs, opts.fastmcp_venv, servers)
        targets["fastmcp"] = Started(url, proc, 0.0)
        report.notes.append(f"(c) FastMCP {version} (`fastmcp run mcp.json --transport http`, {opts.fastmcp_venv})")
    except (RuntimeError, OSError, TimeoutError, subprocess.TimeoutExpired) as exc:
        report.errors.append(f"(c) FastMCP proxy not measured: {exc}")
    if opts.vmcp_problem is None:
        targets["vmcp"] = start_vmcp(procs, opts, "vmcp-c", vmcp_config("bench-c", servers))
    else:
        report.notes.append(f"(c) {opts.vmcp_problem}: vMCP column not measured")
    if not targets:
        raise RuntimeError("neither the FastMCP proxy nor the vMCP could be started")
    single: dict[str, str | None] = {}
    try:
        for kind, started in targets.items():
            single[kind] = (await loadgen.open_sessions(started.url, None, 1))[0]
            await check_call(started.url, single[kind], tool)
        paired = {kind: (s.url, loadgen.request_headers(None, single[kind])) for kind, s in targets.items()}
        latency = await loadgen.paired_latency_run(paired, call_body(tool), 5, 1_000_000, opts.latency_seconds)
    finally:
        for kind, sid in single.items():
            await loadgen.close_sessions(targets[kind].url, None, [sid])
    loads: dict[str, Load] = {}
    children: dict[str, int] = {}
    count = opts.fastmcp_sessions
    for kind, started in targets.items():
        sids = await loadgen.open_sessions(started.url, None, count)
        try:
            await measured_load(started.url, sids, call_body(tool), opts.warmup, started.proc.pid)
            seen: set[int] = set()
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_children(started.proc.pid, seen, stop))
            try:  # limited by time, not by count: a slow proxy just completes fewer calls
                stats, cpu = await measured_load(started.url, sids, call_body(tool), opts.duration, started.proc.pid)
            finally:
                stop.set()
                await watcher
            loads[kind] = Load()
            loads[kind].add(stats, cpu)
            children[kind] = len(seen)
        finally:
            await loadgen.close_sessions(started.url, None, sids)
    report.raw["c"] = {
        "sessions": count,
        "latency_1conn": {kind: asdict(stats) for kind, stats in latency.items()},
        "load": {kind: {**asdict(load), "per_second": load.per_second} for kind, load in loads.items()},
        "child_processes_seen": children,
    }

    f_lat, v_lat = latency.get("fastmcp"), latency.get("vmcp")
    n = min(stats.count for stats in latency.values())
    faster = f_lat.p50_ms / v_lat.p50_ms if f_lat and v_lat and v_lat.p50_ms else None
    report.rows.append(
        Row(
            f"(c) tools/call p50 latency, 1 conn, paired (n={n})",
            fmt_ms(f_lat.p50_ms if f_lat else None),
            fmt_ms(v_lat.p50_ms if v_lat else None),
            "n/a" if faster is None else f"{faster:.1f}x faster",
            "-",
            "-",
        )
    )
    f_load, v_load = loads.get("fastmcp"), loads.get("vmcp")
    ratio = v_load.per_second / f_load.per_second if f_load and v_load and f_load.per_second else None
    report.rows.append(
        Row(
            f"(c) tools/call/s, {count} sessions x 1 ({opts.duration:g} s)",
            fmt_rate(f_load.per_second if f_load else None),
            fmt_rate(v_load.per_second if v_load else None),
            ratio_text(ratio),
            f">= {TARGET_FASTMCP_RATIO:g}x",
            verdict(None if ratio is None or v_load is None else ratio >= TARGET_FASTMCP_RATIO and not v_load.errors),
        )
    )
    f_cpu, v_cpu = (f_load.cpu_us if f_load else None), (v_load.cpu_us if v_load else None)
    report.rows.append(
        Row(
            f"(c) CPU per call, proxy process, {count} sessions x 1",
            "n/a" if f_cpu is None else f"{f_cpu:.0f} us",
            "n/a" if v_cpu is None else f"{v_cpu:.0f} us",
            ratio_text(f_cpu / v_cpu if f_cpu and v_cpu else None, "x less"),
            "-",
            "-",
        )
    )
    for kind, load in loads.items():
        if load.errors:
            report.notes.append(f"(c) {kind}: {load.errors} failed calls, first: {load.first_error}")
    report.notes.append(
        "(c) baseline column = FastMCP proxy; same backends (b1, b2: "
        f"{Path(opts.backend[-1]).name}), same client load; child processes seen during the load: "
        + ", ".join(f"{kind} {number}" for kind, number in children.items())
    )


# --------------------------------------------------------------------------- main


def print_table(opts: Options, report: Report[Row], elapsed: float) -> None:
    context = [
        "baseline: (a) hivegate run --foreground, (b) one backend directly, (c) FastMCP multi-server proxy",
        "load: aiohttp in this process, one worker per MCP session (competes for the cores)",
    ]
    if opts.vmcp_problem:
        context.append(f"VMCP NOT MEASURED: {opts.vmcp_problem}")
    print_report(
        f"hivegate vMCP benchmarks — {'quick' if opts.quick else 'full'} mode, {opts.duration:g} s per load run",
        context,
        ["figure", "baseline", "vMCP", "vMCP vs baseline", "target", "result"],
        report,
        elapsed,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hivegate vmcp serve vs hivegate run and FastMCP, side by side.")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about half the time)")
    parser.add_argument("--only", default="abc", help="which benchmarks to run, e.g. 'a', 'bc' (default: abc)")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 5, quick 3)")
    parser.add_argument("--sessions", default="8,32", help="(a) session counts for the load runs (default 8,32)")
    parser.add_argument("--fastmcp-sessions", type=int, default=8, help="(c) concurrent sessions (default 8)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="minimal", help="(a), (c) stdio backend")
    parser.add_argument("--cold-runs", type=int, help="(b) fresh vMCP starts for the cold list (default 5, quick 3)")
    parser.add_argument("--list-backends", type=int, default=10, help="(b) backends (default 10)")
    parser.add_argument("--list-delay-ms", type=float, default=20.0, help="(b) each backend's tools/list time")
    parser.add_argument("--list-tools", type=int, default=4, help="(b) tools per backend besides echo (default 4)")
    parser.add_argument("--fastmcp-venv", type=Path, default=fastmcp_peer.DEFAULT_VENV, help="(c) FastMCP's venv")
    parser.add_argument("--fastmcp-requirement", default="fastmcp", help="(c) what to pip install, e.g. fastmcp==2.12")
    parser.add_argument("--gateway-cmd", help="command that runs the hivegate CLI (default: the venv's `hivegate`)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    parser.add_argument("--strict", action="store_true", help="exit 2 if any target is missed")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    handle_signals()
    hivegate = find_hivegate(args.gateway_cmd)
    vmcp_problem = cli_problem(hivegate, "vmcp", "serve")
    opts = Options(
        quick=args.quick,
        duration=args.duration or (3.0 if args.quick else 5.0),
        warmup=1.0 if args.quick else 2.0,
        latency_seconds=4.0 if args.quick else 8.0,
        rounds=1 if args.quick else 2,
        sessions=[int(n) for n in args.sessions.split(",") if n.strip()],
        fastmcp_sessions=args.fastmcp_sessions,
        cold_runs=args.cold_runs or (3 if args.quick else 5),
        list_backends=args.list_backends,
        list_delay_ms=args.list_delay_ms,
        list_tools=args.list_tools,
        backend_name=args.backend,
        hivegate=hivegate,
        run_problem=cli_problem(hivegate, "run"),
        vmcp_problem=None if vmcp_problem is None else f"{VMCP_UNAVAILABLE} ({vmcp_problem})",
        fastmcp_venv=args.fastmcp_venv,
        fastmcp_requirement=args.fastmcp_requirement,
    )
    if opts.vmcp_problem:
        print(f"warning: {opts.vmcp_problem}; measuring the rest", file=sys.stderr)
    report: Report[Row] = Report()
    started = begin(report)
    benches = {"a": bench_overhead, "b": bench_lists, "c": bench_fastmcp}
    with Processes() as procs:
        print(f"logs: {procs.log_dir}", file=sys.stderr)
        jobs = {key: functools.partial(bench, opts, procs, report) for key, bench in benches.items()}
        run_benches(procs, jobs, args.only, report.errors)
    return finish(print_table, opts, report, started, json_path=args.json, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
