"""The scale and fault bench: hivegate replicas behind HAProxy, sharing one Redis, under many sessions, while a
replica is killed (-9) and restarted, Redis is stopped (SIGSTOP) for a while, and a backend is killed.

    python benchmarks/scale/run.py [--duration S] [--sessions N] [--replicas N] [--smoke] [--json FILE]

Starts everything on 127.0.0.1 (see `topology.py`), logs the users in through the embedded authorization server,
runs the load and the fault schedule, stops everything (also on error, Ctrl-C or the time limit), then prints per
phase the calls made, errors by kind, sessions lost, p50/p99, the audit lines against the calls answered, the peak
memory of each replica, and each promise of `promises.py` with PASS or FAIL. Exit status: 0 when every promise
held, 2 when one did not, 1 when the bench could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from faults import Fault, Schedule, play
from load import Load, run_load
from promises import GRACE, Verdict, audit_gaps, check, errors, in_phase, percentile
from topology import Topology, start_topology

from common import machine_line, print_grid
from harness import Processes

__all__ = ["Options", "Result", "main", "run_bench"]


@dataclass
class Options:
    duration: float  # seconds of load, roughly: the calm windows are sized so that the run lasts about this long
    sessions: int
    replicas: int
    faults: tuple[str, ...]
    redis_down: float
    part_down: float
    think: float
    refresh_every: float
    reopen_every: float
    warmup: float
    restart: bool = True  # restart the killed replica


@dataclass
class Result:
    load: Load
    schedule: Schedule
    verdicts: list[Verdict]
    audit: dict[str, tuple[int, int, int]]
    elapsed: float
    log_dir: Path


def options(smoke: bool, duration: float | None, sessions: int | None, replicas: int | None) -> Options:
    if smoke:
        return Options(
            duration or 5, sessions or 6, replicas or 2, ("replica",), 2, 0.5, 0.05, 2, 3, 0.5, restart=False
        )
    faults = ("replica", "redis", "backend")
    return Options(duration or 90, sessions or 40, replicas or 3, faults, 10, 5, 0.1, 10, 15, 10)


async def _run(topo: Topology, opts: Options) -> tuple[Load, Schedule]:
    downs = {"replica": opts.part_down, "redis": opts.redis_down, "backend": opts.part_down}
    busy = sum(downs[name] + 3 for name in opts.faults)  # a restart takes ~2 s more, then HAProxy's check
    settle = max(GRACE + 1, (opts.duration - busy) / (len(opts.faults) + 1))
    faults = [Fault(name, downs[name], restart=opts.restart) for name in opts.faults]
    schedule = Schedule(faults, settle=settle, warmup=opts.warmup)
    load, started, stop = Load(), asyncio.Event(), asyncio.Event()
    faults = asyncio.create_task(play(topo, schedule, lambda: load.t0, started, stop))
    loading = asyncio.create_task(
        run_load(
            topo.vmcp_url,
            topo.run_url,
            sessions=opts.sessions,
            stop=stop,
            think=opts.think,
            refresh_every=opts.refresh_every,
            reopen_every=opts.reopen_every,
            started=started,
            load=load,
        )
    )
    done, _ = await asyncio.wait([faults, loading], return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        if task.exception() is not None:
            faults.cancel()
            loading.cancel()
            raise task.exception()  # type: ignore[misc]
    await loading
    await faults
    return load, schedule


def _wait_balanced(topo: Topology, timeout: float = 20) -> None:
    """Wait until HAProxy sends a round of requests of each set to live replicas (its checks mark them up)."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        for url in (topo.vmcp_url, topo.run_url):
            health = url.removesuffix("/mcp") + "/health"
            good = 0
            while good < len(topo.vmcp):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"HAProxy at {health} did not balance over every replica in {timeout:.0f} s")
                try:
                    good = good + 1 if http.get(health).status_code == 200 else 0
                except httpx.HTTPError:
                    good = 0
                if not good:
                    time.sleep(0.1)


def run_bench(opts: Options, log_dir: Path | None = None) -> Result:
    """Start everything, run the load and the faults, stop everything; the figures and verdicts."""
    started = time.perf_counter()
    limit = opts.duration * 2 + 120  # bounded: whatever hangs, everything is stopped by then
    procs = Processes() if log_dir is None else Processes(log_dir=log_dir)
    with procs:
        topo = start_topology(procs, opts.replicas)
        _wait_balanced(topo)
        load, schedule = asyncio.run(asyncio.wait_for(_run(topo, opts), limit))
        for replica in [*topo.vmcp, *topo.run]:
            schedule.rss[f"{replica.name} at end"] = replica.own_rss_kib()
            schedule.rss[f"{replica.name} with its stdio backends"] = replica.rss_kib()
            stdio = len(topo.stdio_backends(replica))
            if stdio:
                schedule.notes.append(f"{replica.name} runs {stdio} stdio backend processes at the end")
        audit_files = {"vmcp": [r.audit for r in topo.vmcp], "run": [r.audit for r in topo.run]}
    audit = audit_gaps(load, audit_files)
    verdicts = check(load, schedule, opts.sessions, audit)
    return Result(load, schedule, verdicts, audit, time.perf_counter() - started, procs.log_dir)


def report(opts: Options, result: Result, load_before: float) -> None:
    load, schedule = result.load, result.schedule
    print()
    print("hivegate at scale: replicas behind HAProxy (round robin, no stickiness), one Redis, faults")
    print(machine_line(load_before, os.getloadavg()[0]))
    print(
        f"{opts.replicas} vMCP replicas (stdio + HTTP backends) and {opts.replicas} `run` replicas (embedded "
        f"authorization server), {opts.sessions} users logged in through it, think time {opts.think * 1000:.0f} ms, "
        f"refresh every {opts.refresh_every:.0f} s; logs in {result.log_dir}"
    )
    logins = [op for op in load.ops if op.what == "login"]
    login_p50 = 1000 * percentile([op.end - op.start for op in logins], 0.5)
    print(f"logins: {len(logins)}, {len(errors(logins))} failed, p50 {login_p50:.0f} ms")
    rows = [["phase", "seconds", "ops", "ok", "errors", "sessions lost", "p50 ms", "p99 ms", "errors by kind"]]
    for phase in schedule.phases:
        ops = [op for op in in_phase(load.ops, schedule.phases, phase) if op.what != "login"]
        latencies = [op.end - op.start for op in ops if op.outcome == "ok"]
        kinds = collections.Counter(f"{op.what}: {op.outcome}" for op in errors(ops))
        lost = sum(1 for t, _, _ in load.sessions_lost if phase.start <= t < phase.end)
        rows.append(
            [
                phase.name,
                f"{phase.end - phase.start:.1f}",
                str(len(ops)),
                str(len(ops) - sum(kinds.values())),
                str(sum(kinds.values())),
                str(lost),
                f"{1000 * percentile(latencies, 0.5):.1f}",
                f"{1000 * percentile(latencies, 0.99):.1f}",
                ", ".join(f"{k} x{n}" for k, n in kinds.most_common()) or "-",
            ]
        )
    print_grid(rows)
    print()
    for target, (answered, written, missing) in result.audit.items():
        print(
            f"audit ({target}): {answered} tool calls answered, {written} audit lines of tool calls, {missing} missing"
        )
    print(
        "peak RSS per replica (MiB): "
        + ", ".join(f"{name} {kib / 1024:.0f}" for name, kib in schedule.rss.items() if " " not in name)
    )
    for what in ("at end", "with its stdio backends"):
        figures = [f"{name.split()[0]} {kib / 1024:.0f}" for name, kib in schedule.rss.items() if name.endswith(what)]
        print(f"RSS {what.replace('its', 'their')} (MiB): " + ", ".join(figures))
    for note in schedule.notes:
        print(f"  note: {note}")
    print()
    print_grid(
        [
            ["promise", "measured", "verdict"],
            *([v.promise, v.measured, "PASS" if v.ok else "FAIL"] for v in result.verdicts),
        ]
    )
    print(f"  (total {result.elapsed:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, help="seconds of load (default 90; --smoke: 6)")
    parser.add_argument("--sessions", type=int, help="users, each with a session on each set (default 40)")
    parser.add_argument("--replicas", type=int, help="replicas per set (default 3; --smoke: 2)")
    parser.add_argument("--smoke", action="store_true", help="seconds, small numbers, one fault (CI)")
    parser.add_argument("--json", type=Path, help="write every operation and verdict to this file")
    args = parser.parse_args(argv)
    for flag in ("duration", "sessions", "replicas"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            parser.error(f"--{flag}: must be positive, got {value}")
    opts = options(args.smoke, args.duration, args.sessions, args.replicas)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops everything as Ctrl-C does
    load_before = os.getloadavg()[0]
    try:
        result = run_bench(opts)
    except (RuntimeError, TimeoutError) as exc:
        print(f"scale bench: could not run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scale bench: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    report(opts, result, load_before)
    if args.json:
        payload = {
            "options": asdict(opts),
            "phases": [asdict(p) for p in result.schedule.phases],
            "verdicts": [asdict(v) for v in result.verdicts],
            "audit": result.audit,
            "rss_kib": result.schedule.rss,
            "sessions_lost": result.load.sessions_lost,
            "ops": [asdict(op) for op in result.load.ops],
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0 if all(v.ok for v in result.verdicts) else 2


if __name__ == "__main__":
    sys.exit(main())
