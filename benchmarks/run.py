"""hivegate benchmark suite: one command, direct vs gateway, side by side.

    python benchmarks/run.py [--quick] [--json results.json] [--strict]

(a) proxy to a trivial fast JSON-RPC HTTP backend: added p50 latency at 1 connection, throughput at 32.
(b) stdio backend (official-SDK echo server): tools/call per second at 32 concurrent callers,
    1 session x 32 in flight and 32 sessions x 1, against the same server driven directly over stdio.
(c) ``hivegate --help`` wall time against ``python -c pass``.
(d) authorization: the gateway without and with ``--authz-config`` (500 Cedar policies) in front of the minimal
    stdio server listing 200 extra tools: tools/call rate and latency, tools/list (filtered per caller) rate and
    latency. Here the "direct" column is the gateway without authz.

JWT validation is ON in the gateway: a local JWKS server (generated RSA key) and minted tokens.
All processes are started here on free 127.0.0.1 ports and stopped at the end, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import authz_policies
import loadgen
from common import Report, begin, finish, print_report
from harness import (
    BENCH_DIR,
    CLEANUP_SIGNALS,
    HOST,
    Identity,
    ManagedProcess,
    Processes,
    cpu_seconds,
    descendants,
    free_port,
)

TARGET_ADDED_P50_MS = 0.5
TARGET_THROUGHPUT_RATIO = 0.3
TARGET_STDIO_CALLS = 1000.0
TARGET_HELP_MS = 300.0
TARGET_LIST_FILTER_MS = 10.0  # tools/list of 200 tools filtered against 500 policies: added p50 at 1 connection
TARGET_DECISION_US = 50.0  # one Cedar decision, p50: measured by benchmarks/authz_bench.py, not here
AUTHZ_POLICIES = 500
AUTHZ_EXTRA_TOOLS = 200
CONNECTIONS = 32
WRK_HINT = "wrk not found: install it with `apt-get install -y wrk` (falling back to a Python load generator)"


@dataclass
class Config:
    quick: bool
    duration: float
    warmup: float
    latency_count: int
    latency_warmup: int
    latency_max_seconds: float
    help_runs: int
    hivegate: list[str] | None  # the command that runs the hivegate CLI
    gateway_problem: str | None
    use_wrk: bool
    gateway_cmd_note: str | None


@dataclass
class Row:
    figure: str
    direct: str
    gateway: str
    compare: str
    target: str
    verdict: str


# --------------------------------------------------------------------------- helpers


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f} ms"


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}/s"


def fmt_us(cpu_seconds: float | None, calls: int) -> str:
    """CPU microseconds per call."""
    return "n/a" if cpu_seconds is None or calls <= 0 else f"{cpu_seconds / calls * 1e6:.0f} us"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def find_hivegate(override: str | None) -> list[str] | None:
    if override:
        return shlex.split(override)
    beside = Path(sys.executable).parent / "hivegate"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("hivegate")
    return [found] if found else None


def gateway_problem(hivegate: list[str] | None) -> str | None:
    """None when ``hivegate run --help`` works, else why not."""
    if hivegate is None:
        return "no `hivegate` executable (is the package installed in the venv?)"
    try:
        argv = [*hivegate, "run", "--help"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`hivegate run --help` failed: {exc}"
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["?"]
        return f"`hivegate run --help` exited {done.returncode}: {last[0]}"
    return None


def start_gateway(
    procs: Processes, cfg: Config, identity: Identity, name: str, target: list[str]
) -> tuple[str, ManagedProcess]:
    """Start ``hivegate run`` (JWT validation on); return the MCP URL it prints, and the process.

    ``target`` is appended to the command line: the backend, after any further options (e.g. ``--authz-config``).
    """
    assert cfg.hivegate is not None
    port = free_port()
    argv = [*cfg.hivegate, "run", "--foreground", "--name", name, "--host", HOST, "--port", str(port)]
    argv += ["--proxy-mode", "streamable-http", *identity.gateway_args(), *target]
    proc = procs.start(f"gateway-{name}", argv)
    return proc.wait_for_url(port, timeout=60), proc


async def check_tool_call(url: str, token: str | None, session_id: str | None) -> None:
    """One tools/call must succeed before anything is measured."""
    headers = loadgen.request_headers(token, session_id)
    status, content_type, body = await loadgen.probe(url, headers, loadgen.tools_call(1))
    if status != 200:
        raise RuntimeError(f"sanity tools/call to {url}: HTTP {status}: {body[:300]!r}")
    loadgen.parse_rpc_body(content_type, body, 1)


async def check_auth_enforced(url: str, session_id: str | None) -> str:
    """Requests without a token, and with a garbage token, must be refused."""
    results = []
    for label, token in (("no token", None), ("bad token", "not.a.jwt")):
        status, _, _ = await loadgen.probe(url, loadgen.request_headers(token, session_id), loadgen.tools_call(1))
        results.append(f"{label} -> HTTP {status}")
        if status not in (401, 403):
            raise RuntimeError(f"JWT validation does not look ON: {label} got HTTP {status}")
    return ", ".join(results)


# --------------------------------------------------------------------------- (a) HTTP proxy


async def bench_proxy(cfg: Config, procs: Processes, identity: Identity, report: Report[Row]) -> None:
    token = identity.mint()
    backend, port = procs.start_listening(
        "fast-backend", [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port"]
    )
    targets: dict[str, str] = {"direct": f"http://{HOST}:{port}/mcp"}
    # CPU time is metered per process during the throughput runs: it does not depend on other load.
    metered: dict[str, dict[str, int]] = {"direct": {"backend": backend.pid}}
    if cfg.gateway_problem is None:
        targets["gateway"], gateway_proc = start_gateway(procs, cfg, identity, "bench-proxy", [targets["direct"]])
        metered["gateway"] = {"backend": backend.pid, "gateway": gateway_proc.pid}
    sessions: dict[str, str | None] = {}
    for kind, url in targets.items():
        sessions[kind] = (await loadgen.open_sessions(url, token, 1))[0]
        await check_tool_call(url, token, sessions[kind])
    if "gateway" in targets:
        report.notes.append(f"(a) auth check on the gateway: {await check_auth_enforced(targets['gateway'], None)}")

    latency: dict[str, loadgen.LatencyStats] = {}
    for kind, url in targets.items():
        headers = loadgen.request_headers(token, sessions[kind])
        latency[kind] = await loadgen.latency_run(
            url, headers, loadgen.tools_call, cfg.latency_warmup, cfg.latency_count, cfg.latency_max_seconds
        )
    # The same, with a nice-19 busy loop keeping the cores out of their sleep states. On an idle VM every process
    # hop pays a wake-up (hundreds of microseconds here), and a gateway adds two hops: this row separates that
    # scheduling cost from the gateway's own work.
    awake: dict[str, loadgen.LatencyStats] = {}
    spinner = procs.start("keep-awake", ["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
    try:
        for kind, url in targets.items():
            headers = loadgen.request_headers(token, sessions[kind])
            awake[kind] = await loadgen.latency_run(
                url, headers, loadgen.tools_call, cfg.latency_warmup, cfg.latency_count, cfg.latency_max_seconds
            )
    finally:
        procs.stop(spinner)
    wrk_c1: dict[str, loadgen.WrkResult] = {}
    throughput: dict[str, float] = {}
    errors: dict[str, int] = {}
    cpu_us: dict[str, dict[str, float]] = {}  # kind -> process -> CPU microseconds per request
    tool = "wrk" if cfg.use_wrk else "python loadgen"
    for kind, url in targets.items():
        body = loadgen.tools_call(1)
        if cfg.use_wrk:  # the -c1 run doubles as the warm-up
            wrk_c1[kind] = loadgen.run_wrk(
                url, body, token=token, session_id=sessions[kind], connections=1, threads=1, duration=cfg.warmup + 2
            )
        else:
            workers = [loadgen.request_headers(token, sessions[kind])] * CONNECTIONS
            await loadgen.http_load(url, workers, cfg.warmup, loadgen.tools_call, tool)
        cpu_before = {name: cpu_seconds([pid]) for name, pid in metered[kind].items()}
        if cfg.use_wrk:
            result = loadgen.run_wrk(
                url,
                body,
                token=token,
                session_id=sessions[kind],
                connections=CONNECTIONS,
                threads=1,
                duration=cfg.duration,
            )
            throughput[kind], errors[kind], completed = result.per_second, result.errors, result.requests
            report.raw[f"a_wrk_c{CONNECTIONS}_{kind}"] = asdict(result)
        else:
            stats = await loadgen.http_load(url, workers, cfg.duration, loadgen.tools_call, tool)
            throughput[kind], errors[kind], completed = stats.per_second, stats.errors, stats.ok
            report.raw[f"a_pyload_c{CONNECTIONS}_{kind}"] = asdict(stats)
        cpu_us[kind] = {
            name: (cpu_seconds([pid]) - cpu_before[name]) / max(completed, 1) * 1e6
            for name, pid in metered[kind].items()
        }
    for kind, count in errors.items():
        if count:
            report.notes.append(f"(a) {kind} throughput run had {count} failed requests (non-2xx or socket errors)")
    if "gateway" in targets:
        await loadgen.close_sessions(targets["gateway"], token, [sessions["gateway"]])
    report.raw["a_latency"] = {kind: asdict(stats) for kind, stats in latency.items()}
    report.raw["a_wrk_c1"] = {kind: asdict(result) for kind, result in wrk_c1.items()}
    report.raw["a_throughput"] = throughput
    report.raw["a_cpu_us_per_request"] = cpu_us

    direct, gateway = latency["direct"], latency.get("gateway")
    for pct in ("p50", "p90", "p99"):
        d_ms = getattr(direct, f"{pct}_ms")
        g_ms = getattr(gateway, f"{pct}_ms") if gateway else None
        added = None if g_ms is None else g_ms - d_ms
        is_p50 = pct == "p50"
        report.rows.append(
            Row(
                f"(a) {pct} latency, 1 conn (aiohttp, n={direct.count}|{gateway.count if gateway else 0})",
                fmt_ms(d_ms),
                fmt_ms(g_ms),
                "n/a" if added is None else f"{added:+.3f} ms",
                f"added <= {TARGET_ADDED_P50_MS} ms" if is_p50 else "-",
                verdict(None if added is None else added <= TARGET_ADDED_P50_MS) if is_p50 else "-",
            )
        )
    report.raw["a_latency_cores_awake"] = {kind: asdict(stats) for kind, stats in awake.items()}
    d_awake, g_awake = awake["direct"].p50_ms, awake["gateway"].p50_ms if "gateway" in awake else None
    added_awake = None if g_awake is None else g_awake - d_awake
    report.rows.append(
        Row(
            "(a) p50 latency, 1 conn, cores kept awake (aiohttp)",
            fmt_ms(d_awake),
            fmt_ms(g_awake),
            "n/a" if added_awake is None else f"{added_awake:+.3f} ms",
            f"added <= {TARGET_ADDED_P50_MS} ms",
            verdict(None if added_awake is None else added_awake <= TARGET_ADDED_P50_MS),
        )
    )
    if wrk_c1:
        d_p50 = wrk_c1["direct"].p50_ms
        g_p50 = wrk_c1["gateway"].p50_ms if "gateway" in wrk_c1 else None
        added = None if g_p50 is None else g_p50 - d_p50
        report.rows.append(
            Row(
                "(a) p50 latency, 1 conn (wrk -c1 -t1)",
                fmt_ms(d_p50),
                fmt_ms(g_p50),
                "n/a" if added is None else f"{added:+.3f} ms",
                f"added <= {TARGET_ADDED_P50_MS} ms",
                verdict(None if added is None else added <= TARGET_ADDED_P50_MS),
            )
        )
    ratio = throughput["gateway"] / throughput["direct"] if "gateway" in throughput and throughput["direct"] else None
    report.rows.append(
        Row(
            f"(a) throughput, {CONNECTIONS} conns ({tool})",
            fmt_rate(throughput["direct"]),
            fmt_rate(throughput.get("gateway")),
            "n/a" if ratio is None else f"{ratio:.2f}x",
            f">= {TARGET_THROUGHPUT_RATIO}x direct",
            verdict(None if ratio is None else ratio >= TARGET_THROUGHPUT_RATIO and not errors.get("gateway")),
        )
    )
    gw_cpu = cpu_us.get("gateway")
    report.rows.append(
        Row(
            f"(a) CPU per request at {CONNECTIONS} conns (backend | gateway process)",
            f"{cpu_us['direct']['backend']:.0f} us",
            "n/a" if gw_cpu is None else f"{gw_cpu['gateway']:.0f} us",
            "n/a" if gw_cpu is None else f"(backend {gw_cpu['backend']:.0f} us)",
            "-",
            "-",
        )
    )


# --------------------------------------------------------------------------- (b) stdio


async def bench_stdio(cfg: Config, procs: Processes, identity: Identity, report: Report[Row]) -> None:
    """Both stdio backends: the official SDK's server (realistic) and a minimal one (the gateway's own capacity)."""
    for server, script in (("SDK server", "stdio_echo_server.py"), ("minimal server", "stdio_minimal_server.py")):
        await _bench_stdio_server(cfg, procs, identity, report, server, [sys.executable, str(BENCH_DIR / script)])


async def _bench_stdio_server(
    cfg: Config, procs: Processes, identity: Identity, report: Report[Row], server: str, server_argv: list[str]
) -> None:
    shapes = [(f"{server}, 1 session x 32", 1, CONNECTIONS), (f"{server}, 32 sessions x 1", CONNECTIONS, 1)]
    direct: dict[str, loadgen.ThroughputStats] = {}
    for label, processes, inflight in shapes:
        direct[label] = await loadgen.stdio_load(server_argv, processes, inflight, cfg.duration, cfg.warmup)
    gateway: dict[str, loadgen.ThroughputStats] = {}
    gateway_cpu: dict[str, float] = {}  # CPU seconds of the gateway process itself (stdio children excluded)
    if cfg.gateway_problem is None:
        token = identity.mint()
        name = "bench-stdio-" + server.split()[0].lower()
        url, gateway_proc = start_gateway(procs, cfg, identity, name, ["--", *server_argv])
        for label, sessions, inflight in shapes:
            session_ids = await loadgen.open_sessions(url, token, sessions)
            try:
                await check_tool_call(url, token, session_ids[0])
                headers = [loadgen.request_headers(token, sid) for sid in session_ids for _ in range(inflight)]
                tool = "aiohttp loadgen"
                await loadgen.http_load(url, headers, cfg.warmup, loadgen.tools_call, tool)
                children = descendants(gateway_proc.pid)
                cpu_before = cpu_seconds([gateway_proc.pid]), cpu_seconds(children)
                stats = await loadgen.http_load(url, headers, cfg.duration, loadgen.tools_call, tool)
                stats.server_cpu_s = cpu_seconds(children) - cpu_before[1]
                gateway_cpu[label] = cpu_seconds([gateway_proc.pid]) - cpu_before[0]
                gateway[label] = stats
            finally:
                await loadgen.close_sessions(url, token, session_ids)
        procs.stop(gateway_proc)  # its stdio children go with it; the next server gets the machine to itself
    report.raw.setdefault("b_direct", {}).update({label: asdict(stats) for label, stats in direct.items()})
    report.raw.setdefault("b_gateway", {}).update({label: asdict(stats) for label, stats in gateway.items()})
    report.raw.setdefault("b_gateway_process_cpu_s", {}).update(gateway_cpu)
    for label, _, _ in shapes:
        d, g = direct[label], gateway.get(label)
        ratio = g.per_second / d.per_second if g and d.per_second else None
        report.rows.append(
            Row(
                f"(b) stdio tools/call, {label}",
                fmt_rate(d.per_second),
                fmt_rate(g.per_second if g else None),
                "n/a" if ratio is None else f"{ratio:.2f}x",
                f"gateway >= {TARGET_STDIO_CALLS:.0f}/s",
                verdict(None if g is None else g.per_second >= TARGET_STDIO_CALLS and not g.errors),
            )
        )
        for kind, run in (("direct", d), ("gateway", g)):
            if run is not None and run.errors:
                report.notes.append(f"(b) {label} {kind}: {run.errors} failed calls, first: {run.first_error}")
        if g is not None:
            report.notes.append(
                f"(b) {label}: per-call latency under load p50/p99 direct {fmt_ms(d.p50_ms)}/{fmt_ms(d.p99_ms)}, "
                f"gateway {fmt_ms(g.p50_ms)}/{fmt_ms(g.p99_ms)}"
            )
    for label, _, _ in shapes:
        d, g = direct[label], gateway.get(label)
        report.rows.append(
            Row(
                f"(b) CPU per call, {label} (stdio server(s) | gateway process)",
                fmt_us(d.server_cpu_s, d.ok),
                "n/a" if g is None else fmt_us(gateway_cpu[label], g.ok),
                "n/a" if g is None else f"(servers {fmt_us(g.server_cpu_s, g.ok)})",
                "-",
                "-",
            )
        )


# --------------------------------------------------------------------------- (c) --help


def median_wall_ms(argv: list[str], runs: int) -> float:
    subprocess.run(argv, capture_output=True, check=True, timeout=60)  # warm the page cache and .pyc files
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, timeout=60)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def bench_help(cfg: Config, procs: Processes, identity: Identity, report: Report[Row]) -> None:
    baseline = median_wall_ms([sys.executable, "-c", "pass"], cfg.help_runs)
    gateway = median_wall_ms([*cfg.hivegate, "--help"], cfg.help_runs) if cfg.hivegate else None
    report.raw["c_help_ms"] = {"python -c pass": baseline, "hivegate --help": gateway}
    report.rows.append(
        Row(
            f"(c) wall time, median of {cfg.help_runs} (python -c pass | hivegate --help)",
            f"{baseline:.1f} ms",
            "n/a" if gateway is None else f"{gateway:.1f} ms",
            "n/a" if gateway is None else f"{gateway - baseline:+.1f} ms",
            f"< {TARGET_HELP_MS:.0f} ms",
            verdict(None if gateway is None else gateway < TARGET_HELP_MS),
        )
    )


# --------------------------------------------------------------------------- (d) authorization


async def list_tool_names(url: str, token: str, session_id: str | None) -> list[str]:
    status, content_type, body = await loadgen.probe(
        url, loadgen.request_headers(token, session_id), loadgen.tools_list(1)
    )
    if status != 200:
        raise RuntimeError(f"tools/list to {url}: HTTP {status}: {body[:300]!r}")
    tools = loadgen.parse_rpc_body(content_type, body, 1)["result"]["tools"]
    return [tool["name"] for tool in tools]


async def check_authz_enforced(
    urls: dict[str, str], token: str, sessions: dict[str, str | None]
) -> tuple[int, int, str]:
    """Prove authz is on: the filtered tools/list is smaller, and exactly the tools outside it are refused (403).

    Returns (tools listed without authz, tools listed with authz, a note).
    """
    plain = await list_tool_names(urls["plain"], token, sessions["plain"])
    kept = await list_tool_names(urls["authz"], token, sessions["authz"])  # also teaches the gateway the annotations
    if len(plain) != AUTHZ_EXTRA_TOOLS + 1:
        raise RuntimeError(f"tools/list without authz has {len(plain)} tools, expected {AUTHZ_EXTRA_TOOLS + 1}")
    if "echo" not in kept or not set(kept) < set(plain):
        raise RuntimeError(f"tools/list with authz is not a filtered subset with echo: {len(kept)} tools: {kept[:10]}")
    # Every tool, called: the listed ones must pass the gate (the minimal server answers all but echo with a
    # JSON-RPC error, HTTP 200), the others must be refused with HTTP 403.
    headers = loadgen.request_headers(token, sessions["authz"])
    mismatched = []
    for name in plain:
        status, _, body = await loadgen.probe(urls["authz"], headers, loadgen.tools_call(1, tool=name))
        if status != (200 if name in kept else 403):
            mismatched.append(f"{name} -> HTTP {status} {body[:100]!r}")
    if mismatched:
        raise RuntimeError(f"calls disagree with the filtered list: {'; '.join(mismatched[:5])}")
    denied = next(name for name in plain if name not in kept)
    note = (
        f"(d) authz check: tools/list {len(plain)} tools without authz, {len(kept)} with ({AUTHZ_POLICIES} policies, "
        f"token groups {authz_policies.BENCH_GROUPS}); tools/call of each of the {len(plain)}: the {len(kept)} listed "
        f"pass (echo -> 200), the {len(plain) - len(kept)} others -> HTTP 403 (e.g. {denied})"
    )
    return len(plain), len(kept), note


async def _throughput_with_cpu(
    cfg: Config, url: str, headers: list[dict[str, str]], make_body: loadgen.BodyFactory, pid: int
) -> tuple[loadgen.ThroughputStats, float]:
    """Warm up, then measure; returns the stats and the gateway process's CPU microseconds per completed request."""
    await loadgen.http_load(url, headers, cfg.warmup, make_body, "aiohttp loadgen")
    before = cpu_seconds([pid])
    stats = await loadgen.http_load(url, headers, cfg.duration, make_body, "aiohttp loadgen")
    return stats, (cpu_seconds([pid]) - before) / max(stats.ok, 1) * 1e6


def _diff_ms(base: float, other: float) -> str:
    return "n/a" if math.isnan(base) or math.isnan(other) else f"{other - base:+.3f} ms"


async def bench_authz(cfg: Config, procs: Processes, identity: Identity, report: Report[Row]) -> None:
    """The gateway without and with 500 Cedar policies, side by side, in front of the minimal stdio server."""
    if cfg.gateway_problem is not None:
        raise RuntimeError(f"needs the gateway: {cfg.gateway_problem}")
    token = identity.mint(groups=authz_policies.BENCH_GROUPS)
    config_path = procs.log_dir / f"authz-{AUTHZ_POLICIES}.json"
    config_path.write_text(json.dumps(authz_policies.config(AUTHZ_POLICIES), indent=1))
    server = [sys.executable, str(BENCH_DIR / "stdio_minimal_server.py"), "--tools", str(AUTHZ_EXTRA_TOOLS)]
    kinds = {"plain": ["--", *server], "authz": ["--authz-config", str(config_path), "--", *server]}
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    for kind, target in kinds.items():
        urls[kind], proc = start_gateway(procs, cfg, identity, f"bench-authz-{kind}", target)
        pids[kind] = proc.pid
    sessions: dict[str, str | None] = {}
    try:
        for kind, url in urls.items():
            sessions[kind] = (await loadgen.open_sessions(url, token, 1))[0]
            await check_tool_call(url, token, sessions[kind])
        listed, kept, note = await check_authz_enforced(urls, token, sessions)
        report.notes.append(note)
        headers = {kind: loadgen.request_headers(token, sid) for kind, sid in sessions.items()}
        call_load: dict[str, loadgen.ThroughputStats] = {}
        call_cpu: dict[str, float] = {}
        list_load: dict[str, loadgen.ThroughputStats] = {}
        list_cpu: dict[str, float] = {}
        # Sequential latency: one request to each gateway in turn, so the difference is authz, not drift.
        paired = {kind: (url, headers[kind]) for kind, url in urls.items()}
        latency_seconds = 4.0 if cfg.quick else 8.0
        call_latency = await loadgen.paired_latency_run(
            paired, loadgen.tools_call, cfg.latency_warmup, cfg.latency_count, latency_seconds
        )
        list_latency = await loadgen.paired_latency_run(
            paired, loadgen.tools_list, 50, cfg.latency_count // 4, latency_seconds
        )
        for kind, url in urls.items():
            call_load[kind], call_cpu[kind] = await _throughput_with_cpu(
                cfg, url, [headers[kind]] * CONNECTIONS, loadgen.tools_call, pids[kind]
            )
        for kind, url in urls.items():
            list_load[kind], list_cpu[kind] = await _throughput_with_cpu(
                cfg, url, [headers[kind]] * CONNECTIONS, loadgen.tools_list, pids[kind]
            )
    finally:
        for kind, url in urls.items():
            if kind in sessions:
                await loadgen.close_sessions(url, token, [sessions[kind]])
    report.raw["d_authz"] = {
        "policies": AUTHZ_POLICIES,
        "tools_listed": {"plain": listed, "authz": kept},
        "call_load": {kind: asdict(stats) for kind, stats in call_load.items()},
        "call_gateway_cpu_us": call_cpu,
        "call_latency_1conn": {kind: asdict(stats) for kind, stats in call_latency.items()},
        "list_load": {kind: asdict(stats) for kind, stats in list_load.items()},
        "list_gateway_cpu_us": list_cpu,
        "list_latency_1conn": {kind: asdict(stats) for kind, stats in list_latency.items()},
    }

    shape = f"1 session x {CONNECTIONS}"
    plain, authz = call_load["plain"], call_load["authz"]
    ratio = authz.per_second / plain.per_second if plain.per_second else None
    report.rows.append(
        Row(
            f"(d) tools/call, {shape} (no authz | {AUTHZ_POLICIES} policies)",
            fmt_rate(plain.per_second),
            fmt_rate(authz.per_second),
            "n/a" if ratio is None else f"{ratio:.2f}x",
            f"authz >= {TARGET_STDIO_CALLS:.0f}/s",
            verdict(authz.per_second >= TARGET_STDIO_CALLS and not authz.errors),
        )
    )
    for pct in ("p50", "p99"):
        p_ms, a_ms = getattr(plain, f"{pct}_ms"), getattr(authz, f"{pct}_ms")
        report.rows.append(
            Row(
                f"(d) tools/call {pct} latency under load, {shape}",
                fmt_ms(p_ms),
                fmt_ms(a_ms),
                _diff_ms(p_ms, a_ms),
                "-",
                "-",
            )
        )
    p_seq, a_seq = call_latency["plain"], call_latency["authz"]
    report.rows.append(
        Row(
            f"(d) tools/call p50 latency, 1 conn (n={p_seq.count}|{a_seq.count})",
            fmt_ms(p_seq.p50_ms),
            fmt_ms(a_seq.p50_ms),
            _diff_ms(p_seq.p50_ms, a_seq.p50_ms),
            f"decision <= {TARGET_DECISION_US:.0f} us: authz_bench.py",
            "-",
        )
    )
    report.rows.append(
        Row(
            f"(d) CPU per tools/call, gateway process, {shape}",
            f"{call_cpu['plain']:.0f} us",
            f"{call_cpu['authz']:.0f} us",
            f"{call_cpu['authz'] - call_cpu['plain']:+.0f} us",
            "-",
            "-",
        )
    )
    plain, authz = list_load["plain"], list_load["authz"]
    ratio = authz.per_second / plain.per_second if plain.per_second else None
    report.rows.append(
        Row(
            f"(d) tools/list ({listed} tools -> {kept}), {shape}",
            fmt_rate(plain.per_second),
            fmt_rate(authz.per_second),
            "n/a" if ratio is None else f"{ratio:.2f}x",
            "-",
            "-",
        )
    )
    p_seq, a_seq = list_latency["plain"], list_latency["authz"]
    added = a_seq.p50_ms - p_seq.p50_ms
    report.rows.append(
        Row(
            f"(d) tools/list p50 latency, 1 conn (n={p_seq.count}|{a_seq.count})",
            fmt_ms(p_seq.p50_ms),
            fmt_ms(a_seq.p50_ms),
            _diff_ms(p_seq.p50_ms, a_seq.p50_ms),
            f"filter {AUTHZ_EXTRA_TOOLS} tools x {AUTHZ_POLICIES} policies <= {TARGET_LIST_FILTER_MS:.0f} ms",
            verdict(None if math.isnan(added) else added <= TARGET_LIST_FILTER_MS),
        )
    )
    report.rows.append(
        Row(
            f"(d) CPU per tools/list, gateway process, {shape}",
            f"{list_cpu['plain']:.0f} us",
            f"{list_cpu['authz']:.0f} us",
            f"{list_cpu['authz'] - list_cpu['plain']:+.0f} us",
            "-",
            "-",
        )
    )
    report.notes.append(
        f"(d) tools/list under load, {shape}: p50/p99 no authz {fmt_ms(plain.p50_ms)}/{fmt_ms(plain.p99_ms)}, "
        f"authz {fmt_ms(authz.p50_ms)}/{fmt_ms(authz.p99_ms)}"
    )
    for what, runs in (("tools/call", call_load), ("tools/list", list_load)):
        for kind, run in runs.items():
            if run.errors:
                report.notes.append(f"(d) {what} {kind}: {run.errors} failed requests, first: {run.first_error}")


# --------------------------------------------------------------------------- main


def print_table(cfg: Config, report: Report[Row], elapsed: float) -> None:
    mode = "quick" if cfg.quick else "full"
    load = "wrk 4 (1 thread)" if cfg.use_wrk else "python load generator (competes for the 2 cores)"
    latency = "sequential aiohttp client" + (" and wrk -c1" if cfg.use_wrk else "")
    ran = {row.figure[:3] for row in report.rows}
    context = []
    if "(a)" in ran:
        context.append(f"(a) load: {load}; latency: {latency}")
    if ran & {"(b)", "(d)"}:
        context.append("(b), (d) load: aiohttp, 32 workers in one process (competes for the 2 cores)")
    if "(d)" in ran:
        with_authz = f"gateway with --authz-config ({AUTHZ_POLICIES} policies)"
        context.append(
            f"(d) columns: direct = gateway without authz, gateway = {with_authz}; 1 conn latency: paired requests"
        )
    if cfg.gateway_cmd_note:
        context.append(f"gateway command: {cfg.gateway_cmd_note}")
    if cfg.gateway_problem:
        context.append(f"GATEWAY NOT MEASURED: {cfg.gateway_problem}")
    title = (
        f"hivegate benchmarks — {mode} mode, {cfg.duration:g} s per throughput run, JWT validation ON in the gateway"
    )
    header = ["figure", "direct", "gateway", "gateway vs direct", "target", "result"]
    print_report(title, context, header, report, elapsed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hivegate benchmarks: direct vs gateway, side by side.")
    parser.add_argument("--quick", action="store_true", help="3 s throughput runs instead of 10 s")
    parser.add_argument("--duration", type=float, help="seconds per throughput run (overrides the mode's)")
    parser.add_argument("--only", default="abcd", help="which benchmarks to run, e.g. 'a', 'bd' (default: abcd)")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    parser.add_argument(
        "--gateway-cmd", help="command that runs the hivegate CLI (default: the venv's `hivegate`), e.g. for A/B runs"
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 if any target is missed")
    return parser.parse_args()


def _on_signal(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP stop the script (and so its processes) as Ctrl-C does, even when started in the background."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> int:
    args = parse_args()
    handle_signals()
    hivegate = find_hivegate(args.gateway_cmd)
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    if shutil.which("wrk") is None:
        print(WRK_HINT, file=sys.stderr)
    cfg = Config(
        quick=args.quick,
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=1.0 if args.quick else 2.0,
        latency_count=2000 if args.quick else 5000,  # fewer if it takes longer than latency_max_seconds
        latency_warmup=200,
        latency_max_seconds=10.0 if args.quick else 30.0,
        help_runs=10,
        hivegate=hivegate,
        gateway_problem=gateway_problem(hivegate),
        use_wrk=use_wrk,
        gateway_cmd_note=args.gateway_cmd,
    )
    if cfg.gateway_problem:
        print(f"warning: gateway unavailable, measuring direct only: {cfg.gateway_problem}", file=sys.stderr)
    report: Report[Row] = Report()
    started = begin(report)
    benches = {"a": bench_proxy, "b": bench_stdio, "c": bench_help, "d": bench_authz}
    with Processes() as procs:
        print(f"logs: {procs.log_dir}", file=sys.stderr)
        identity = Identity.start(procs)
        jobs = {key: functools.partial(bench, cfg, procs, identity, report) for key, bench in benches.items()}
        run_benches(procs, jobs, args.only, report.errors)
    return finish(print_table, cfg, report, started, json_path=args.json, settings_key="config", strict=args.strict)


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop (if installed); a signal cancels it, so its clean-up code still runs."""

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        received: list[int] = []

        def on_signal(signum: int) -> None:
            if not received:  # the first one cancels; later ones must not interrupt the clean-up
                received.append(signum)
                task.cancel()

        for signum in CLEANUP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await coro
        except asyncio.CancelledError:
            if received:
                raise SystemExit(128 + received[0]) from None
            raise
        finally:
            for signum in CLEANUP_SIGNALS:
                loop.remove_signal_handler(signum)

    try:
        import uvloop
    except ImportError:
        asyncio.run(guarded())
    else:
        uvloop.run(guarded())


def run_benches(
    procs: Processes, benches: Mapping[str, Callable[[], Coroutine[Any, Any, None]]], only: str, errors: list[str]
) -> None:
    """Run the benchmarks named in `only`, one at a time; each one's failure is recorded in `errors` and its
    processes are stopped before the next starts."""
    for key, bench in benches.items():
        if key not in only:
            continue
        print(f"running ({key}) ...", file=sys.stderr, flush=True)
        keep = len(procs.running)
        try:
            run_async(bench())
        except Exception as exc:
            errors.append(f"({key}) {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            for proc in procs.running[keep:]:  # this benchmark's processes
                procs.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
