"""`--workers` (issue 19): the gateway with 1 and with 2 worker processes, and the backend direct, in one run.

    python benchmarks/workers_bench.py [--quick] [--rounds N] [--duration SECONDS] [--backend haproxy|python]
                                       [--wrk-threads N] [--authz N] [--json PATH]

A trivial HTTP backend behind `hivegate run URL` (JWT validation on, as in `run.py` (a)), once with `--workers 1`
and once with `--workers 2`, both started before anything is measured. Each round measures, for direct, 1 worker
and 2 workers in turn: `wrk -c32` throughput (with the CPU time per request of the gateway's process tree, of the
backend and of wrk), then `wrk -c1` p50 latency. Rounds interleave the three so that a change of load on the machine
hits them alike; the medians over the rounds are compared. Targets (issue 19): 2 workers >= 1.4x the throughput of
1 worker at 32 connections, and the same p50 at one connection (not more than 10 % above 1 worker's).

In front of a remote server the session is the server's, served by whichever worker a connection reaches, so one
session for every wrk connection spreads over both workers as many clients' sessions would.

`--backend` is the trivial backend: `haproxy` (default; `static_backend.py`, HAProxy answering from its config) or
`python` (`fast_backend.py`, uvicorn). On 2 cores the backend and wrk run on the gateway's cores, so the cheaper
backend is the one that shows how the gateway itself scales. The report prints what the cores allow: every core
busy with the gateway, the backend and wrk alone, at the CPU each spent per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import aiohttp

import authz_policies
import loadgen
import static_backend
from common import machine_line, print_grid
from harness import BENCH_DIR, HOST, Identity, ManagedProcess, Processes, cpu_seconds, descendants, free_port
from run import find_hivegate, handle_signals

CONNECTIONS = 32
TARGET_RATIO = 1.4
TARGET_P50_SLACK = 0.10  # 2 workers' p50 at one connection at most 10 % above 1 worker's
KINDS = ("direct", "1 worker", "2 workers")


@dataclass
class Sample:
    kind: str
    round: int
    per_second: float
    errors: int
    gateway_cpu_us: float | None  # CPU of the gateway's process tree per request (None: direct)
    backend_cpu_us: float
    wrk_cpu_us: float  # the load generator's own CPU per request
    p50_ms: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s runs, 2 rounds")
    parser.add_argument("--rounds", type=int, help="rounds of (direct, 1 worker, 2 workers) (default 3; quick 2)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 8; quick 3)")
    parser.add_argument(
        "--backend",
        choices=("haproxy", "python"),
        default="haproxy",
        help="the trivial backend: HAProxy answering from its config (default), or fast_backend.py",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads at 32 connections (default 1)")
    parser.add_argument("--hivegate", help="command that runs the hivegate CLI (default: the venv's)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--authz",
        type=int,
        default=0,
        metavar="N",
        help="also Cedar: --authz-config with N policies of authz_policies.py (default 0: none)",
    )
    return parser.parse_args()


@dataclass(frozen=True)
class Load:
    """wrk at `threads` threads (at most one per connection) for `duration` seconds, `token` and `session` sent."""

    threads: int
    duration: float
    token: str = ""
    session: str | None = None

    def run(self, url: str, body: bytes, connections: int, seconds: float | None = None) -> loadgen.WrkResult:
        return loadgen.run_wrk(url, body, token=self.token, session_id=self.session, connections=connections,
                               threads=min(self.threads, connections), duration=seconds or self.duration)  # fmt: skip


def main() -> int:
    args = parse_args()
    handle_signals()
    if shutil.which("wrk") is None:
        print("wrk not found: install it with `apt-get install -y wrk`", file=sys.stderr)
        return 1
    hivegate = find_hivegate(args.hivegate)
    if hivegate is None:
        print("no `hivegate` executable (is the package installed in the venv?)", file=sys.stderr)
        return 1
    rounds = args.rounds or (2 if args.quick else 3)
    duration = args.duration or (3.0 if args.quick else 8.0)
    load = Load(args.wrk_threads, duration)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hivegate-workers-bench-") as folder, Processes() as procs:
        if args.backend == "haproxy":
            backend = static_backend.start(procs, Path(folder))
        else:
            server = [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port"]
            proc, port = procs.start_listening("fast-backend", server)
            backend = proc, f"http://{HOST}:{port}/mcp"
        extra = gateway_options(Path(folder), args.authz)
        samples = asyncio.run(measure(procs, backend, hivegate, rounds, load, extra))
    load_after = os.getloadavg()[0]
    what = f"{args.backend} backend, JWT validation on" + (f", {args.authz} Cedar policies" if args.authz else "")
    report(samples, load_before, load_after, load, what)
    if args.json is not None:
        args.json.write_text(json.dumps({"samples": [asdict(s) for s in samples], "load": [load_before, load_after]}))
    return 0


def gateway_options(folder: Path, policies: int) -> list[str]:
    """The gateway's options beside JWT validation: Cedar with `policies` policies (none for 0)."""
    if not policies:
        return []
    config = folder / "authz.json"
    config.write_text(json.dumps(authz_policies.config(policies)))
    return ["--authz-config", str(config)]


async def measure(
    procs: Processes,
    backend_and_url: tuple[ManagedProcess, str],
    hivegate: list[str],
    rounds: int,
    load: Load,
    extra: list[str],
) -> list[Sample]:
    identity = Identity.start(procs)
    token = identity.mint(groups=authz_policies.BENCH_GROUPS)
    backend, direct = backend_and_url
    urls = {"direct": direct}
    gateways: dict[str, int] = {}
    for kind, workers in (("1 worker", 1), ("2 workers", 2)):
        gw_port = free_port()
        argv = [*hivegate, "run", "--foreground", "--name", f"bench-w{workers}", "--host", HOST, "--port",
                str(gw_port), "--workers", str(workers), *identity.gateway_args(), *extra, direct]  # fmt: skip
        proc = procs.start(f"gateway-w{workers}", argv)
        urls[kind] = proc.wait_for_url(gw_port, timeout=60)
        gateways[kind] = proc.pid
    loads = {kind: replace(load, token=token, session=(await loadgen.open_sessions(url, token, 1))[0])
             for kind, url in urls.items()}  # fmt: skip
    body = loadgen.tools_call(1)
    for kind, url in urls.items():  # every target answers the call with a result, not an error (wrk sees statuses)
        async with aiohttp.ClientSession() as http:
            headers = loadgen.request_headers(token, loads[kind].session)
            await loadgen.post_rpc(http, url, headers, body, 1)
    for kind, url in urls.items():  # warm-up
        loads[kind].run(url, body, CONNECTIONS, 2)
    samples = []
    for number in range(1, rounds + 1):
        for kind, url in urls.items():
            tree = [gateways[kind], *descendants(gateways[kind])] if kind in gateways else []
            before, backend_before = cpu_seconds(tree), cpu_seconds([backend.pid])
            many = loads[kind].run(url, body, CONNECTIONS)
            calls = max(many.requests, 1)
            cpu = (cpu_seconds(tree) - before) / calls * 1e6 if tree else None
            backend_cpu = (cpu_seconds([backend.pid]) - backend_before) / calls * 1e6
            one = loads[kind].run(url, body, 1)
            errors = many.errors + one.errors
            samples.append(Sample(kind, number, many.per_second, errors, cpu, backend_cpu, many.cpu_us, one.p50_ms))
            print(f"round {number}: {kind}: {many.per_second:.0f} req/s at {CONNECTIONS} conns, "
                  f"p50 {one.p50_ms:.3f} ms at 1 conn", file=sys.stderr, flush=True)  # fmt: skip
    return samples


def report(samples: list[Sample], load_before: float, load_after: float, load: Load, what: str) -> None:
    def median(kind: str, field: str) -> float:
        values = [getattr(s, field) for s in samples if s.kind == kind and getattr(s, field) is not None]
        return statistics.median(values) if values else float("nan")

    rate = {kind: median(kind, "per_second") for kind in KINDS}
    p50 = {kind: median(kind, "p50_ms") for kind in KINDS}
    cpu = {kind: median(kind, "gateway_cpu_us") for kind in KINDS}
    backend_cpu = {kind: median(kind, "backend_cpu_us") for kind in KINDS}
    wrk_cpu = {kind: median(kind, "wrk_cpu_us") for kind in KINDS}
    print()
    print(f"hivegate --workers: trivial HTTP backend, direct vs 1 worker vs 2 workers ({what})")
    print(machine_line(load_before, load_after))
    rounds = max(s.round for s in samples)
    print(f"wrk -t{min(load.threads, CONNECTIONS)} -c{CONNECTIONS} and -t1 -c1, {load.duration:g} s each, {rounds} "
          "interleaved rounds; medians")  # fmt: skip
    rows = [["", "req/s @32", "p50 @1 (ms)", "gateway CPU/req", "backend CPU/req", "wrk CPU/req", "errors"]]
    for kind in KINDS:
        errors = sum(s.errors for s in samples if s.kind == kind)
        shown_cpu = "-" if kind == "direct" else f"{cpu[kind]:.0f} us"
        rows.append([kind, f"{rate[kind]:.0f}", f"{p50[kind]:.3f}", shown_cpu, f"{backend_cpu[kind]:.0f} us",
                     f"{wrk_cpu[kind]:.0f} us", str(errors)])  # fmt: skip
    print_grid(rows)
    ratio = rate["2 workers"] / rate["1 worker"]
    slack = p50["2 workers"] / p50["1 worker"] - 1
    print(f"  2 workers / 1 worker throughput: {ratio:.2f}x (target >= {TARGET_RATIO}x: "
          f"{'ok' if ratio >= TARGET_RATIO else 'MISS'})")  # fmt: skip
    print(f"  1 worker / direct: {rate['1 worker'] / rate['direct']:.2f}x; "
          f"2 workers / direct: {rate['2 workers'] / rate['direct']:.2f}x")  # fmt: skip
    print(f"  p50 at 1 conn, 2 workers vs 1 worker: {slack:+.1%} (target at most +{TARGET_P50_SLACK:.0%}: "
          f"{'ok' if slack <= TARGET_P50_SLACK else 'MISS'})")  # fmt: skip
    per_round = ", ".join(
        f"{a.per_second / b.per_second:.2f}x"
        for a, b in zip(
            [s for s in samples if s.kind == "2 workers"], [s for s in samples if s.kind == "1 worker"], strict=True
        )
    )
    print(f"  2 workers / 1 worker per round: {per_round}")
    # What the cores allow: every core busy with the gateway, the backend and wrk alone, at the CPU each spent per
    # request in that run; N workers are also held to N cores.
    cores = len(os.sched_getaffinity(0))

    def spent(kind: str) -> float:
        return (cpu[kind] + backend_cpu[kind] + wrk_cpu[kind]) / 1e6

    bound_2 = min(2 / (cpu["2 workers"] / 1e6), cores / spent("2 workers"))  # 2 workers use at most 2 cores
    bound_1 = min(1 / (cpu["1 worker"] / 1e6), cores / spent("1 worker"))
    print(f"  CPU bound on {cores} cores (gateway + backend + wrk CPU per request): 1 worker "
          f"{bound_1:.0f} req/s, 2 workers {bound_2:.0f} req/s ({bound_2 / bound_1:.2f}x)")  # fmt: skip
    # What 2 workers could give on these cores if each request cost them, the backend and wrk what it cost with
    # 1 worker: what the cores allow before anything running two workers adds (an estimate from this run's costs).
    estimate = min(2 / (cpu["1 worker"] / 1e6), cores / spent("1 worker")) / bound_1
    print(f"  at 1 worker's CPU per request, 2 workers could give at most {estimate:.2f}x on {cores} cores")


if __name__ == "__main__":
    sys.exit(main())
