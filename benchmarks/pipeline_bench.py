"""The request pipeline's cost in front of a real MCP server, side by side: direct vs hivegate (vs a baseline).

    python benchmarks/pipeline_bench.py                         # direct vs this checkout
    python benchmarks/pipeline_bench.py --baseline-src DIR      # ... vs another checkout's src/ (before/after)

The backend is the official SDK's `MCPServer` over Streamable HTTP (`sdk_http_server.py`: one `echo` tool, event
stream answers; `--json` for JSON answers). Each gateway is `hivegate run URL` with JWT validation (a local JWKS)
and Cedar (a permit for `echo` and a `forbid` guard on its argument, so arguments are converted and checked), as a
client meets it in production. Every target gets one MCP session (initialize + initialized) and then:

* latency at 1 connection: the targets are asked in turn, one `tools/call` each (`loadgen.paired_latency_run`), so
  a difference is the gateway and not drift between two runs; p50 and the p50 added over direct;
* calls per second at 1 connection and the gateway process's CPU per call (user + system from /proc over the run),
  the median of `--rounds` runs in which the targets take turns.

Targets (issue "One request pipeline for every front"): added p50 ≤ 0.3 ms, calls/s ≥ 0.92× direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from common import machine_line
from harness import HOST, Identity, ManagedProcess, Processes, cpu_seconds, free_port, wait_for_port
from loadgen import http_load, mcp_initialize, paired_latency_run, request_headers, tools_call

BENCH_DIR = Path(__file__).resolve().parent
POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"echo") when '
    '{ resource has arg_text && resource.arg_text == "forbidden" };',
]
URL_LINE = re.compile(rf"at (http://{re.escape(HOST)}:\d+/mcp)\b")


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    process: ManagedProcess | None  # the gateway (None: the backend itself)


def start_gateway(
    procs: Processes, name: str, argv: list[str], env: dict[str, str] | None = None
) -> tuple[ManagedProcess, str]:
    proc = procs.start(name, argv, env)
    url = proc.wait_for_output(URL_LINE, timeout=60).group(1)
    wait_for_port(int(url.rsplit(":", 1)[1].split("/")[0]), timeout=30, proc=proc)
    return proc, url


async def session_headers(url: str, token: str | None) -> dict[str, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        session_id = await mcp_initialize(session, url, token)
    return request_headers(token, session_id)


async def measure(targets: list[Target], args: argparse.Namespace) -> list[list[str]]:
    def make(i: int) -> bytes:
        return tools_call(i, "echo", "hello")

    paired = await paired_latency_run(
        {t.name: (t.url, t.headers) for t in targets}, make, warmup=200, count=args.count, max_seconds=args.seconds
    )
    rates: dict[str, list[float]] = {t.name: [] for t in targets}
    cpus: dict[str, list[float]] = {t.name: [] for t in targets}
    for round_ in range(args.rounds):  # the targets take turns, in a rotating order, so neither load bursts nor
        for target in targets[round_ % len(targets) :] + targets[: round_ % len(targets)]:  # position favour one
            pids = [target.process.pid] if target.process is not None else []
            before = cpu_seconds(pids)
            load = await http_load(target.url, [target.headers], args.duration, make, "echo")
            cpu = cpu_seconds(pids) - before
            if load.errors:
                raise RuntimeError(f"{target.name}: {load.errors} errors ({load.first_error})")
            rates[target.name].append(load.ok / load.seconds)
            cpus[target.name].append(cpu / load.ok)
    rows = [["target", "p50 ms", "p99 ms", "added p50", "calls/s c=1", "× direct", "gateway CPU/call"]]
    direct_p50, direct_rate = paired["direct"].p50_ms, statistics.median(rates["direct"])
    for target in targets:
        stats, rate = paired[target.name], statistics.median(rates[target.name])
        added = "" if target.name == "direct" else f"{stats.p50_ms - direct_p50:+.3f} ms"
        cpu_text = f"{statistics.median(cpus[target.name]) * 1e6:.0f} µs" if target.process is not None else ""
        rows.append(
            [
                target.name,
                f"{stats.p50_ms:.3f}",
                f"{stats.p99_ms:.3f}",
                added,
                f"{rate:.0f}",
                f"{rate / direct_rate:.2f}×",
                cpu_text,
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src/ directory, run side by side")
    parser.add_argument("--json", action="store_true", help="the backend answers with JSON instead of event streams")
    parser.add_argument("--count", type=int, default=3000, help="paired latency samples per target (default 3000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time cap of the paired latency run")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per throughput run (default 3)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave the processes on any core")
    parser.add_argument("--rounds", type=int, default=6, help="throughput runs per target, taken in turns (median)")
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also run this checkout without Cedar and without authentication, to attribute the cost to stages",
    )
    parser.add_argument("--profile", type=Path, help="run this checkout's gateway under cProfile, stats to this file")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    with Processes() as procs:
        identity = Identity.start(procs)
        token = identity.mint(groups=["bench-users"])
        port = free_port()
        backend_argv = [sys.executable, str(BENCH_DIR / "sdk_http_server.py"), *(["--json"] if args.json else [])]
        backend = procs.start("sdk-backend", [*backend_argv, str(port)])
        wait_for_port(port, timeout=60, proc=backend)
        backend_url = f"http://{HOST}:{port}/mcp"
        policy = procs.log_dir / "authz.json"
        policy.write_text(json.dumps({"version": "1.0", "type": "cedarv1",
                                      "cedar": {"policies": POLICIES, "entities_json": "[]"}}))  # fmt: skip
        gateway_args = ["run", "--foreground", "--port", "0", *identity.gateway_args(), "--authz-config", str(policy),
                        "--log-level", "warning", backend_url]  # fmt: skip
        gateways: dict[str, tuple[ManagedProcess, str]] = {}
        if args.baseline_src is not None:  # started first: the order the targets are started in is not theirs
            env = {"PYTHONPATH": str(args.baseline_src.resolve())}
            gateways["baseline"] = start_gateway(
                procs, "baseline", [sys.executable, "-m", "hivegate", *gateway_args], env
            )
        own = {"PYTHONPATH": str(BENCH_DIR.parent / "src")}  # as the baseline's: the two start alike
        profiler = [str(BENCH_DIR / "profiled.py"), str(args.profile.resolve())] if args.profile else []
        argv = [sys.executable, *profiler, "-m", "hivegate", *gateway_args]
        gateways["hivegate"] = start_gateway(procs, "hivegate", argv, own)
        if args.stages:
            without_cedar = [a for a in gateway_args if a not in ("--authz-config", str(policy))]
            without_auth = ["run", "--foreground", "--port", "0", "--anonymous", "--log-level", "warning", backend_url]
            for name, variant in (("no Cedar", without_cedar), ("no auth", without_auth)):
                gateways[name] = start_gateway(procs, name, [sys.executable, "-m", "hivegate", *variant], own)
        if args.pin and (os.cpu_count() or 1) >= 2:
            # The backend and this load generator on one core, the gateways on the other: two identical gateways
            # otherwise differ by up to 15% in CPU per call, depending on which core the scheduler puts them on.
            os.sched_setaffinity(0, {0})
            os.sched_setaffinity(backend.pid, {0})
            for proc, _ in gateways.values():
                os.sched_setaffinity(proc.pid, {1})
        targets = [Target("direct", backend_url, asyncio.run(session_headers(backend_url, None)), None)]
        for name, (proc, url) in gateways.items():
            credential = None if name == "no auth" else token
            targets.append(Target(name, url, asyncio.run(session_headers(url, credential)), proc))
        rows = asyncio.run(measure(targets, args))
        if args.profile:
            os.kill(gateways["hivegate"][0].pid, signal.SIGUSR1)  # profiled.py writes the stats
            time.sleep(1.0)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    answers = "JSON" if args.json else "event-stream"
    print(f"SDK MCPServer over Streamable HTTP ({answers} answers), JWT + Cedar on; 1 connection")
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print(machine_line(load_start, os.getloadavg()[0]), f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
