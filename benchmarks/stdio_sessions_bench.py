"""Memory against client sessions on one stdio server: `--stdio-sharing` and `--stdio-idle-timeout` (issue 19).

    python benchmarks/stdio_sessions_bench.py [--sessions 1,10,100,1000] [--per-session-max 50] [--concurrency 50]
                                              [--idle-timeout 30] [--json PATH] [--strict]

Behind `hivegate run -- python benchmarks/stdio_echo_server.py` (the official Python SDK's `MCPServer`, one `echo`
tool), for each mode (`shared`, `pool=4`, `per-session`) the sessions are opened step by step (1, then 10, 100,
1000 open at once), each with a raw HTTP `initialize` + `notifications/initialized` and one `tools/call` whose
answer is checked (its own text back); at each step every open session calls the tool once more, then the memory of
the gateway and all its stdio server processes is summed from /proc (RSS, and PSS, which counts shared pages once).
`per-session` stops at `--per-session-max` sessions (each is a process: ~60-70 MB).

Then the idle timeout, in `per-session` mode: 50 sessions call a tool; 45 of them go quiet while 5 go on calling;
once the idle timeout has passed the memory should follow the 5 active sessions; then the 45 call again (their
processes start again, `initialize` replayed) and must all succeed.

Direct counterpart: the same SDK server alone (one process, driven over stdin/stdout), and the gateway with no
session open. Targets (issue 19): 1,000 sessions in `shared` and in `pool=4` within 1.5 GB (gateway + servers), every
session's call answered; with the idle timeout, processes after the timeout = active sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from common import machine_line, print_grid
from harness import BENCH_DIR, Processes, descendants, free_port
from loadgen import StdioPeer, mcp_initialize, post_rpc, request_headers, tools_call
from run import handle_signals, run_async

SERVER = [sys.executable, str(BENCH_DIR / "stdio_echo_server.py")]
TARGET_BYTES = 1.5 * 1024**3
MB = 1024 * 1024


@dataclass
class Options:
    sessions: list[int]
    per_session_max: int
    concurrency: int
    idle_timeout: float
    modes: list[str]


@dataclass
class Step:
    mode: str
    sessions: int
    processes: int  # stdio server processes alive
    rss_mb: float  # gateway + servers
    pss_mb: float
    calls_ok: int
    calls_failed: int
    seconds: float  # to open the new sessions and have every open session call the tool
    first_error: str | None = None


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    baseline: dict[str, float] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loadavg: tuple[float, float] = (0.0, 0.0)


def memory(root: int) -> tuple[int, float, float]:
    """(stdio server processes, RSS MB, PSS MB) of `root` and every process below it."""
    rss = pss = 0
    pids = [root, *descendants(root)]
    for pid in pids:
        rss += _kb(f"/proc/{pid}/status", "VmRSS:")
        pss += _kb(f"/proc/{pid}/smaps_rollup", "Pss:")
    return len(pids) - 1, rss / 1024, pss / 1024


def _kb(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sessions:
    """Raw MCP sessions on one gateway: open them, call `echo` on them, every answer checked."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.ids: list[str] = []
        self._limit = asyncio.Semaphore(concurrency)
        self._calls = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        self.http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300))
        self.ok = self.failed = 0
        self.first_error: str | None = None
        self.latencies: list[float] = []

    async def open(self, count: int) -> None:
        await asyncio.gather(*(self._open_one() for _ in range(count)))

    async def _open_one(self) -> None:
        async with self._limit:
            try:
                sid = await mcp_initialize(self.http, self.url, None)
            except Exception as exc:
                self._fail(exc)
                return
            assert sid is not None
            self.ids.append(sid)
        await self.call(sid)

    async def call(self, sid: str) -> None:
        self._calls += 1
        text = f"{sid[:8]}-{self._calls}"
        async with self._limit:
            started = time.perf_counter()
            try:
                answer, _ = await post_rpc(self.http, self.url, request_headers(None, sid), tools_call(7, text=text), 7)
                got = answer["result"]["content"][0]["text"]
                if got != text:
                    raise AssertionError(f"session {sid[:8]} got {got!r} for {text!r}")
            except Exception as exc:
                self._fail(exc)
                return
            self.latencies.append(time.perf_counter() - started)
            self.ok += 1

    async def call_all(self, ids: list[str] | None = None) -> None:
        await asyncio.gather(*(self.call(sid) for sid in (self.ids if ids is None else ids)))

    def _fail(self, exc: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]

    async def close(self) -> None:
        await self.http.close()


def start_gateway(procs: Processes, mode: str, idle: str, count: int) -> tuple[int, str]:
    port = free_port()
    argv = [sys.executable, "-m", "hivegate", "run", "--foreground", "--port", str(port),
            "--stdio-sharing", mode, "--stdio-idle-timeout", idle,
            "--max-sessions", str(count + 100), "--max-sessions-per-user", str(count + 100),
            "--max-requests-per-user", "4096", "--log-level", "warning", "--", *SERVER]  # fmt: skip
    src = str(BENCH_DIR.parent / "src")  # this checkout's hivegate, whatever the venv has installed
    proc = procs.start(f"gateway-{mode}", argv, env={"PYTHONPATH": src})
    return proc.pid, proc.wait_for_url(port, timeout=60)


async def curve(procs: Processes, opts: Options, mode: str, report: Report) -> None:
    steps = opts.sessions
    if mode == "per-session" and max(steps) > opts.per_session_max:  # a process each: stop at the max
        steps = sorted({*(n for n in steps if n < opts.per_session_max), opts.per_session_max})
    pid, url = start_gateway(procs, mode, "5m", max(steps))
    if mode == opts.modes[0]:
        _, rss, pss = memory(pid)
        report.baseline["gateway_no_session_rss_mb"], report.baseline["gateway_no_session_pss_mb"] = rss, pss
    sessions = Sessions(url, opts.concurrency)
    try:
        for count in steps:
            ok, failed = sessions.ok, sessions.failed
            started = time.perf_counter()
            await sessions.open(count - len(sessions.ids))
            await sessions.call_all()
            seconds = time.perf_counter() - started
            processes, rss, pss = memory(pid)
            report.steps.append(Step(mode, len(sessions.ids), processes, rss, pss, sessions.ok - ok,
                                     sessions.failed - failed, seconds, sessions.first_error))  # fmt: skip
            calls = f"{sessions.ok - ok} calls ok, {sessions.failed - failed} failed"
            print(f"  {mode}: {len(sessions.ids)} sessions, {processes} processes, {rss:.0f} MB RSS, {calls}, "
                  f"{seconds:.1f} s", flush=True)  # fmt: skip
    finally:
        await sessions.close()
        procs.stop_all()


async def idle_run(procs: Processes, opts: Options, report: Report) -> None:
    total, active = 50, 5
    pid, url = start_gateway(procs, "per-session", f"{opts.idle_timeout:g}s", total)
    sessions = Sessions(url, opts.concurrency)
    out = report.idle
    out.update(sessions=total, active=active, idle_timeout_s=opts.idle_timeout)
    try:
        await sessions.open(total)
        await sessions.call_all()  # the first ones may have gone idle while the last ones started
        out["processes_all_active"], out["rss_all_active_mb"], out["pss_all_active_mb"] = memory(pid)
        busy, quiet = sessions.ids[:active], sessions.ids[active:]
        deadline = time.monotonic() + opts.idle_timeout * 4 + 30
        started = time.monotonic()
        while time.monotonic() < deadline:  # the 5 go on calling; the 45 are silent
            await sessions.call_all(busy)
            if memory(pid)[0] <= active and time.monotonic() - started > opts.idle_timeout:
                break
            await asyncio.sleep(0.5)
        out["seconds_until_settled"] = time.monotonic() - started
        out["processes_after_timeout"], out["rss_after_timeout_mb"], out["pss_after_timeout_mb"] = memory(pid)
        sessions.latencies.clear()
        ok, failed = sessions.ok, sessions.failed
        await sessions.call(quiet[0])  # back from idle alone: one process start, initialize replayed
        out["wake_one_ms"] = sessions.latencies[-1] * 1000 if sessions.ok > ok else float("nan")
        sessions.latencies.clear()
        await sessions.call_all(quiet[1:])  # the others at once: 44 processes start together
        out["wake_calls_ok"], out["wake_calls_failed"] = sessions.ok - ok, sessions.failed - failed
        lat = sorted(sessions.latencies)
        out["wake_p50_ms"] = statistics.median(lat) * 1000 if lat else float("nan")
        out["wake_max_ms"] = lat[-1] * 1000 if lat else float("nan")
        out["processes_after_wake"], out["rss_after_wake_mb"], _ = memory(pid)
        out["first_error"] = sessions.first_error
    finally:
        await sessions.close()
        procs.stop_all()


async def direct_baseline(report: Report) -> None:
    """The SDK server alone: one process, initialized, one call (its memory is what each per-session adds)."""
    peer = await StdioPeer.start(SERVER)
    try:
        await peer.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        _, rss, pss = memory(peer.pid)
        report.baseline["server_alone_rss_mb"], report.baseline["server_alone_pss_mb"] = rss, pss
    finally:
        await peer.close()


def verdicts(report: Report) -> list[tuple[str, str, str]]:
    out = []
    for mode in ("shared", "pool=4"):
        top = [s for s in report.steps if s.mode == mode and s.sessions >= 1000]
        if top:
            s = top[-1]
            fits = s.rss_mb * MB <= TARGET_BYTES and s.calls_failed == 0 and s.calls_ok >= s.sessions
            out.append((f"{mode}: {s.sessions} sessions ≤ 1.5 GB, every call answered",
                        f"{s.rss_mb:.0f} MB RSS, {s.calls_failed} failed", "PASS" if fits else "MISS"))  # fmt: skip
    idle = report.idle
    if "processes_after_timeout" in idle:
        good = idle["processes_after_timeout"] <= idle["active"] and idle.get("wake_calls_failed", 1) == 0
        out.append((f"per-session + idle timeout: processes after it ≤ {idle['active']} active, all wake up",
                    f"{idle['processes_after_timeout']} processes, {idle['wake_calls_failed']} failed",
                    "PASS" if good else "MISS"))  # fmt: skip
    return out


def print_tables(opts: Options, report: Report, elapsed: float) -> None:
    print("\nstdio sessions: memory (gateway + all stdio server processes) against open client sessions")
    print(machine_line(*report.loadavg))
    base = report.baseline
    print(f"direct: the SDK server alone {base.get('server_alone_rss_mb', 0):.0f} MB RSS "
          f"({base.get('server_alone_pss_mb', 0):.0f} MB PSS); the gateway with no session "
          f"{base.get('gateway_no_session_rss_mb', 0):.0f} MB RSS")  # fmt: skip
    rows = [["mode", "sessions", "processes", "RSS MB", "PSS MB", "RSS MB/session", "calls ok", "failed", "s"]]
    for s in report.steps:
        per = s.rss_mb / s.sessions
        rows.append([s.mode, str(s.sessions), str(s.processes), f"{s.rss_mb:.0f}", f"{s.pss_mb:.0f}", f"{per:.1f}",
                     str(s.calls_ok), str(s.calls_failed), f"{s.seconds:.1f}"])  # fmt: skip
    if report.steps:
        print_grid(rows)
        print("\nRSS against sessions (bar: log scale of MB; each row one point of the curve)")
    top = max((s.rss_mb for s in report.steps), default=1.0)
    for s in report.steps:
        width = int(50 * _log_ratio(s.rss_mb, top))
        print(f"  {s.mode:>11} {s.sessions:>5} | {'#' * width} {s.rss_mb:.0f} MB")
    per_session = [s for s in report.steps if s.mode == "per-session"]
    if per_session and per_session[-1].sessions < max(opts.sessions):
        last = per_session[-1]
        each = (last.rss_mb - report.baseline.get("gateway_no_session_rss_mb", 0.0)) / last.sessions
        print(f"  per-session at {max(opts.sessions)} sessions, not run: ~{each * max(opts.sessions) / 1024:.0f} GB "
              f"(extrapolated: {each:.0f} MB per session at {last.sessions})")  # fmt: skip
    idle = report.idle
    if idle:
        print(f"\nper-session with --stdio-idle-timeout {idle['idle_timeout_s']:g}s: {idle['sessions']} sessions, "
              f"{idle['active']} stay active")  # fmt: skip
        print_grid([
            ["moment", "processes", "RSS MB"],
            ["all 50 just called", str(idle["processes_all_active"]), f"{idle['rss_all_active_mb']:.0f}"],
            [f"after the timeout ({idle['seconds_until_settled']:.1f} s)", str(idle["processes_after_timeout"]),
             f"{idle['rss_after_timeout_mb']:.0f}"],
            ["the 45 called again", str(idle["processes_after_wake"]), f"{idle['rss_after_wake_mb']:.0f}"],
        ])  # fmt: skip
        wake = f"p50 {idle['wake_p50_ms']:.0f} ms, max {idle['wake_max_ms']:.0f} ms"
        one = f"{idle['wake_one_ms']:.0f} ms (a process start, initialize replayed)"
        print(f"  the 45 calls after idle: {idle['wake_calls_ok']} ok, {idle['wake_calls_failed']} failed; one alone "
              f"{one}; the other 44 at once: {wake}")  # fmt: skip
    for name, figure, verdict in verdicts(report):
        print(f"  target: {name}: {figure}: {verdict}")
    for error in report.errors:
        print(f"  ERROR: {error}")
    print(f"  (total {elapsed:.0f} s)")


def _log_ratio(value: float, top: float) -> float:
    floor = 10.0  # MB at the left edge
    return max(0.0, math.log(max(value, floor) / floor) / math.log(max(top, floor * 10) / floor))


async def main_async(opts: Options, report: Report) -> None:
    with Processes() as procs:
        try:
            await direct_baseline(report)
        except Exception as exc:
            report.errors.append(f"direct: {type(exc).__name__}: {exc}")
        for mode in opts.modes:
            print(f"mode {mode} ...", flush=True)
            try:
                await curve(procs, opts, mode, report)
            except Exception as exc:
                report.errors.append(f"{mode}: {type(exc).__name__}: {exc}")
        if opts.idle_timeout > 0:
            print("per-session with the idle timeout ...", flush=True)
            try:
                await idle_run(procs, opts, report)
            except Exception as exc:
                report.errors.append(f"idle: {type(exc).__name__}: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,10,100,1000", help="the curve's points (sessions open at once)")
    parser.add_argument("--per-session-max", type=int, default=50, help="per-session mode stops here (a process each)")
    parser.add_argument("--concurrency", type=int, default=50, help="HTTP requests in flight at most")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds, for the idle run (0: skip it)")
    parser.add_argument("--modes", default="shared,pool=4,per-session", help="the curves to run ('': none)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args()
    handle_signals()
    points = [int(n) for n in args.sessions.split(",")]
    opts = Options(sessions=points, per_session_max=args.per_session_max, concurrency=args.concurrency,
                   idle_timeout=args.idle_timeout, modes=[m for m in args.modes.split(",") if m])  # fmt: skip
    report = Report()
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    run_async(main_async(opts, report))
    report.loadavg = (load_start, os.getloadavg()[0])
    print_tables(opts, report, time.perf_counter() - started)
    if args.json:
        args.json.write_text(json.dumps({"options": asdict(opts), **asdict(report)}, indent=2, default=str))
    if report.errors:
        return 1
    return 2 if args.strict and any(v == "MISS" for _, _, v in verdicts(report)) else 0


if __name__ == "__main__":
    sys.exit(main())
