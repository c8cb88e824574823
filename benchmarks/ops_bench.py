"""What the operations features cost a request: audit trail, Prometheus metrics, JSON logs, OpenTelemetry traces.

    python benchmarks/ops_bench.py [--quick] [--callers 8,32] [--backend http|stdio] [--json PATH] [--keep-audit]

Four ``hivegate run --foreground`` gateways run side by side in front of the same fast backend (``fast_backend.py``,
or with ``--backend stdio`` one ``stdio_minimal_server.py`` per gateway), all with JWT validation on:

  plain      no audit, no diagnostics port, default (text) logs
  ops        --enable-audit --audit-config FILE (logFile in a temp dir, includeRequestData and includeResponseData
             true, maxDataSize 1024) --diagnostics-port P (Prometheus /metrics) --log-format json
  otel       ops + --otel-endpoint at a local OTLP/HTTP receiver (otlp_receiver.py, its own process)
  otel-down  ops + --otel-endpoint at a closed port

Measured: tools/call p50/p90 at 1 connection (one gateway at a time, in alternating blocks A B C D D C B A ...),
tools/call/s at N concurrent callers (N requests in flight on one MCP session; each gateway in turn, in alternating
order) and the gateway process's CPU per call (from /proc), each with its ratio to ``plain``.

Every answer is parsed and checked (an error is not a call). Before anything is measured: a missing and a bad token
are refused by every gateway, each ops gateway writes exactly one audit line per tools/call (with the request and
response data, without the token) and moves its /metrics counter by one per call (parsed with
``prometheus_client.parser``), the receiver gets the ``otel`` gateway's spans, and the ``otel-down`` gateway logs
its failed export as a JSON line. After the run the audit lines, the counters and the spans are counted again
against every tools/call sent. Everything listens on 127.0.0.1 and is stopped at the end, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

import loadgen
from common import LoadSettings, begin, finish, print_report
from harness import BENCH_DIR, HOST, Identity, ManagedProcess, Processes, cpu_seconds, descendants, free_port
from run import check_auth_enforced, find_hivegate, fmt_ms, fmt_rate, gateway_problem, handle_signals, run_async

AUDIT_MAX_DATA = 1024
CHECK_CALLS = 20  # tools/calls of the pre-measurement check, per gateway
TOOL_CALL_SPAN = "mcp tools/call"
COLLECTOR_DOWN_BOUND = 1.25  # otel-down vs ops: p50 and cost per call (rate) at most this much worse
EXPORT_FAILED = "tracing: cannot export spans"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    ops: bool  # audit file + diagnostics port + JSON logs
    otel: str | None = None  # "up": the local receiver; "down": a closed port


VARIANTS = (
    Variant("plain", "plain", ops=False),
    Variant("ops", "audit+metrics+json", ops=True),
    Variant("otel", "+ otel", ops=True, otel="up"),
    Variant("otel-down", "+ otel, collector down", ops=True, otel="down"),
)


@dataclass
class Options(LoadSettings):
    blocks: int
    rounds: int
    callers: list[int]
    backend: str
    hivegate: list[str]
    keep_audit: bool


@dataclass
class Gateway:
    variant: Variant
    url: str
    proc: ManagedProcess
    audit_path: Path | None
    metrics_url: str | None
    session_id: str | None = None
    calls: int = 0  # tools/calls answered successfully through this gateway, all phases
    failed: int = 0  # tools/calls that failed (none expected)

    @property
    def key(self) -> str:
        return self.variant.key


@dataclass
class Load:
    """Several measured runs at one concurrency against one gateway, added up."""

    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    gateway_cpu_s: float = 0.0
    backend_cpu_s: float = 0.0
    receiver_cpu_s: float = 0.0
    p50s_ms: list[float] = field(default_factory=list)
    p99s_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def us_per_call(self, cpu_s: float) -> float | None:
        return cpu_s / self.ok * 1e6 if self.ok else None


@dataclass
class Report:
    rows: list[list[str]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- what the OTLP receiver got


async def receiver_stats(url: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(f"{url}/stats") as resp:
        return orjson.loads(await resp.read())


async def tool_call_spans(url: str) -> int:
    return int((await receiver_stats(url))["by_name"].get(TOOL_CALL_SPAN, 0))


# --------------------------------------------------------------------------- audit lines and metrics


def audit_tool_calls(path: Path | None) -> int:
    """The audit file's `mcp_tool_call` lines."""
    if path is None or not path.exists():
        return 0
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            count += b'"type":"mcp_tool_call"' in line
    return count


def last_audit_line(path: Path) -> dict[str, Any]:
    with path.open("rb") as lines:
        last = b""
        for line in lines:
            last = line
    return orjson.loads(last)


async def scrape(url: str) -> dict[str, float]:
    """A few counters from /metrics, parsed with prometheus_client's parser."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, session.get(url) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
        text = (await resp.read()).decode()
    found: dict[str, float] = {"calls_success": 0.0, "calls_other": 0.0, "duration_count": 0.0, "http_200": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "hivegate_mcp_requests_total" and labels.get("method") == "tools/call":
                found["calls_success" if labels.get("outcome") == "success" else "calls_other"] += sample.value
            elif sample.name == "hivegate_mcp_request_duration_seconds_count" and labels.get("method") == "tools/call":
                found["duration_count"] += sample.value
            elif sample.name == "hivegate_http_requests_total" and labels.get("status") == "200":
                found["http_200"] += sample.value
    return found


# --------------------------------------------------------------------------- processes


def start_gateways(
    procs: Processes, opts: Options, identity: Identity, backend_target: list[str], receiver_url: str, audit_dir: Path
) -> dict[str, Gateway]:
    """Start the four gateways at once, then wait for each one's URL."""
    closed = f"http://{HOST}:{free_port()}"  # nothing listens there
    pending: list[tuple[Variant, ManagedProcess, int, Path | None, str | None]] = []
    for variant in VARIANTS:
        port = free_port()
        argv = [*opts.hivegate, "run", "--foreground", "--name", f"ops-{variant.key}", "--host", HOST]
        argv += ["--port", str(port), "--proxy-mode", "streamable-http", *identity.gateway_args()]
        audit_path: Path | None = None
        metrics_url: str | None = None
        if variant.ops:
            audit_path = audit_dir / f"{variant.key}.audit.jsonl"
            config = {
                "logFile": str(audit_path),
                "includeRequestData": True,
                "includeResponseData": True,
                "maxDataSize": AUDIT_MAX_DATA,
            }
            config_path = audit_dir / f"{variant.key}.audit.json"
            config_path.write_text(json.dumps(config, indent=2))
            diagnostics = free_port()
            metrics_url = f"http://{HOST}:{diagnostics}/metrics"
            argv += ["--enable-audit", "--audit-config", str(config_path), "--diagnostics-port", str(diagnostics)]
            argv += ["--log-format", "json"]
        if variant.otel is not None:
            argv += ["--otel-endpoint", receiver_url if variant.otel == "up" else closed]
        proc = procs.start(f"gateway-{variant.key}", [*argv, *backend_target])
        pending.append((variant, proc, port, audit_path, metrics_url))
    gateways: dict[str, Gateway] = {}
    for variant, proc, port, audit_path, metrics_url in pending:
        gateways[variant.key] = Gateway(variant, proc.wait_for_url(port, timeout=60), proc, audit_path, metrics_url)
    return gateways


def call_body(request_id: int) -> bytes:
    return loadgen.tools_call(request_id, text=f"ops-bench-{request_id}")


async def checked_call(gw: Gateway, headers: dict[str, str], request_id: int) -> dict[str, Any]:
    status, content_type, body = await loadgen.probe(gw.url, headers, call_body(request_id))
    if status != 200:
        raise RuntimeError(f"{gw.key}: tools/call: HTTP {status}: {body[:300]!r}")
    result = loadgen.parse_rpc_body(content_type, body, request_id)["result"]
    if not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"{gw.key}: tools/call: tool error {result!r}")
    gw.calls += 1
    return result


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


# --------------------------------------------------------------------------- checks before measuring


async def check_gateway(gw: Gateway, token: str, receiver_url: str, report: Report) -> None:
    """JWT on; for the ops gateways: audit lines, /metrics counters, spans or the exporter's warning."""
    headers = loadgen.request_headers(token, gw.session_id)
    await checked_call(gw, headers, 1)
    auth = await check_auth_enforced(gw.url, gw.session_id)
    if not gw.variant.ops:
        report.checks.append(f"{gw.key}: JWT validation on ({auth})")
        return
    assert gw.audit_path is not None
    assert gw.metrics_url is not None
    lines_before, metrics_before = audit_tool_calls(gw.audit_path), await scrape(gw.metrics_url)
    for request_id in range(2, 2 + CHECK_CALLS):
        await checked_call(gw, headers, request_id)

    async def recorded() -> bool:  # the observers run after the answer is sent: the last line may lag a little
        counted = (await scrape(metrics_url))["calls_success"] - metrics_before["calls_success"]
        return audit_tool_calls(audit_path) - lines_before >= CHECK_CALLS and counted >= CHECK_CALLS

    audit_path, metrics_url = gw.audit_path, gw.metrics_url
    await wait_until(recorded, timeout=3)
    lines = audit_tool_calls(gw.audit_path) - lines_before
    metrics = await scrape(gw.metrics_url)
    moved = metrics["calls_success"] - metrics_before["calls_success"]
    if lines != CHECK_CALLS:
        raise RuntimeError(f"{gw.key}: {CHECK_CALLS} tools/calls wrote {lines} audit lines to {gw.audit_path}")
    if moved != CHECK_CALLS:
        raise RuntimeError(f"{gw.key}: {CHECK_CALLS} tools/calls moved hivegate_mcp_requests_total by {moved:g}")
    line = last_audit_line(gw.audit_path)
    data = line.get("data") or {}
    expected = f"ops-bench-{1 + CHECK_CALLS}"
    problems = [
        what
        for what, ok in (
            ("msg audit_event", line.get("msg") == "audit_event"),
            ("type mcp_tool_call", line.get("type") == "mcp_tool_call"),
            ("outcome success", line.get("outcome") == "success"),
            ("the caller's subject", (line.get("subjects") or {}).get("user_id") == "bench-user"),
            ("the request data", (data.get("request") or {}).get("arguments", {}).get("text") == expected),
            ("the response data", "content" in (data.get("response") or {})),
            ("no token", token not in json.dumps(line)),
        )
        if not ok
    ]
    if problems:
        raise RuntimeError(f"{gw.key}: the last audit line lacks {', '.join(problems)}: {line}")
    what = f"{gw.key}: JWT on; {CHECK_CALLS} tools/calls -> {lines} audit lines (with request/response data, no token)"
    what += f", hivegate_mcp_requests_total{{tools/call,success}} +{moved:g}"
    if gw.variant.otel == "up":

        async def spans_arrived() -> bool:
            return await tool_call_spans(receiver_url) >= gw.calls

        if not await wait_until(spans_arrived, timeout=10):
            raise RuntimeError(f"{gw.key}: the receiver got {await tool_call_spans(receiver_url)} of {gw.calls} spans")
        what += f", receiver has {await tool_call_spans(receiver_url)} '{TOOL_CALL_SPAN}' spans of {gw.calls} calls"
    elif gw.variant.otel == "down":

        async def warned() -> bool:
            return EXPORT_FAILED in gw.proc.log_text()

        if not await wait_until(warned, timeout=10):
            raise RuntimeError(f"{gw.key}: no '{EXPORT_FAILED}' warning in {gw.proc.log_path}")
        warning = next(text for text in gw.proc.log_text().splitlines() if EXPORT_FAILED in text)
        try:
            level = orjson.loads(warning).get("level")
        except orjson.JSONDecodeError:
            raise RuntimeError(f"{gw.key}: --log-format json, but the warning is not JSON: {warning}") from None
        what += f", failed export logged once as a JSON {level} line"
    report.checks.append(what)


# --------------------------------------------------------------------------- measuring


async def latency_blocks(
    gateways: dict[str, Gateway], token: str, opts: Options
) -> dict[str, list[loadgen.LatencyStats]]:
    """Sequential tools/calls, one gateway at a time, in blocks A B C D, D C B A, ...; ``latency_seconds`` each."""
    runs: dict[str, list[loadgen.LatencyStats]] = {key: [] for key in gateways}
    warmup = 30 if opts.quick else 50
    for block in range(opts.blocks):
        order = list(gateways) if block % 2 == 0 else list(reversed(gateways))
        for key in order:
            gw = gateways[key]
            headers = loadgen.request_headers(token, gw.session_id)
            stats = await loadgen.latency_run(
                gw.url, headers, call_body, warmup, 1_000_000, opts.latency_seconds / opts.blocks
            )
            gw.calls += warmup + stats.count  # latency_run raises on any failed call
            runs[key].append(stats)
    return runs


def metered_pids(gw: Gateway, backend_pid: int | None) -> list[int]:
    """The backend's processes: the shared HTTP backend, or this gateway's stdio children."""
    return [backend_pid] if backend_pid is not None else descendants(gw.proc.pid)


async def settle(gw: Gateway, receiver_url: str) -> None:
    """Let the traced gateway's batch exporter send what the run queued (exports every 1 s, or 512 spans)."""
    if gw.variant.otel == "up":
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = await tool_call_spans(receiver_url)
            if seen >= gw.calls:
                return
            if seen != last:
                last, stable_since = seen, time.monotonic()
            elif time.monotonic() - stable_since > 1.3:  # longer than the schedule delay: spans were dropped
                return
            await asyncio.sleep(0.1)
    elif gw.variant.otel == "down":
        await asyncio.sleep(0.2)


async def one_load(
    gw: Gateway,
    token: str,
    callers: int,
    duration: float,
    backend_pid: int | None,
    receiver: ManagedProcess,
    receiver_url: str,
    load: Load | None,
) -> None:
    """``callers`` concurrent tools/calls on the gateway's session for ``duration``; added to ``load`` if given."""
    headers = [loadgen.request_headers(token, gw.session_id)] * callers
    others = metered_pids(gw, backend_pid)
    before = cpu_seconds([gw.proc.pid]), cpu_seconds(others), cpu_seconds([receiver.pid])
    stats = await loadgen.http_load(gw.url, headers, duration, call_body, "aiohttp loadgen")
    gw.calls += stats.ok
    gw.failed += stats.errors
    await settle(gw, receiver_url)
    after = cpu_seconds([gw.proc.pid]), cpu_seconds(others), cpu_seconds([receiver.pid])
    if load is None:
        return
    load.ok += stats.ok
    load.errors += stats.errors
    load.seconds += stats.seconds
    load.gateway_cpu_s += after[0] - before[0]
    load.backend_cpu_s += after[1] - before[1]
    load.receiver_cpu_s += after[2] - before[2]
    load.p50s_ms.append(stats.p50_ms)
    load.p99s_ms.append(stats.p99_ms)
    load.first_error = load.first_error or stats.first_error


async def bench(opts: Options, procs: Processes, report: Report) -> None:
    identity = Identity.start(procs)
    token = identity.mint()
    backend_pid: int | None = None
    if opts.backend == "http":
        backend, port = procs.start_listening(
            "fast-backend", [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port"]
        )
        backend_pid = backend.pid
        target = [f"http://{HOST}:{port}/mcp"]
    else:
        target = ["--", sys.executable, str(BENCH_DIR / "stdio_minimal_server.py")]
    receiver, receiver_port = procs.start_listening(
        "otlp-receiver", [sys.executable, str(BENCH_DIR / "otlp_receiver.py"), "--port"]
    )
    receiver_url = f"http://{HOST}:{receiver_port}"
    audit_dir = Path(tempfile.mkdtemp(prefix="hivegate-ops-audit-"))
    report.raw["audit_dir"] = str(audit_dir)
    gateways: dict[str, Gateway] = {}
    try:
        gateways = start_gateways(procs, opts, identity, target, receiver_url, audit_dir)
        for gw in gateways.values():
            gw.session_id = (await loadgen.open_sessions(gw.url, token, 1))[0]
        for gw in gateways.values():
            await check_gateway(gw, token, receiver_url, report)
        print("checks passed; measuring latency ...", file=sys.stderr, flush=True)
        latency = await latency_blocks(gateways, token, opts)
        loads: dict[int, dict[str, Load]] = {}
        for callers in opts.callers:
            print(f"measuring {callers} callers ...", file=sys.stderr, flush=True)
            loads[callers] = {key: Load() for key in gateways}
            for gw in gateways.values():  # warm-up, unmeasured
                await one_load(gw, token, callers, opts.warmup, backend_pid, receiver, receiver_url, None)
            for round_ in range(opts.rounds):
                order = list(gateways) if round_ % 2 == 0 else list(reversed(gateways))
                for key in order:
                    gw = gateways[key]
                    await one_load(
                        gw, token, callers, opts.duration, backend_pid, receiver, receiver_url, loads[callers][key]
                    )
        await final_checks(gateways, receiver_url, report)
    finally:
        for gw in gateways.values():
            await loadgen.close_sessions(gw.url, token, [gw.session_id])
        if opts.keep_audit:
            report.notes.append(f"audit files kept in {audit_dir}")
        else:
            for gw in gateways.values():
                procs.stop(gw.proc)  # closes its audit file first
            shutil.rmtree(audit_dir, ignore_errors=True)
    report.raw["latency_1conn_blocks"] = {key: [asdict(s) for s in runs] for key, runs in latency.items()}
    report.raw["load"] = {
        callers: {key: {**asdict(load), "per_second": load.per_second} for key, load in by_key.items()}
        for callers, by_key in loads.items()
    }
    add_rows(opts, latency, loads, report)


async def final_checks(gateways: dict[str, Gateway], receiver_url: str, report: Report) -> None:
    """Every tools/call sent is in the audit file and in the counter; the spans that reached the receiver."""
    for gw in gateways.values():
        if gw.failed:
            report.errors.append(f"{gw.key}: {gw.failed} tools/calls failed")
        if not gw.variant.ops:
            continue
        assert gw.metrics_url is not None
        await asyncio.sleep(0.2)  # the last calls' observers
        lines = audit_tool_calls(gw.audit_path)
        metrics = await scrape(gw.metrics_url)
        counted = int(metrics["calls_success"])
        what = f"{gw.key} after the run: {gw.calls:,} tools/calls answered, {lines:,} audit lines"
        what += f", hivegate_mcp_requests_total{{tools/call,success}} {counted:,}"
        if gw.variant.otel == "up":
            spans = await tool_call_spans(receiver_url)
            what += f", '{TOOL_CALL_SPAN}' spans received {spans:,} ({spans / max(gw.calls, 1):.1%})"
            stats = await receiver_stats(receiver_url)
            what += f" in {stats['exports']:,} exports of {stats['bytes'] / max(stats['exports'], 1) / 1024:.0f} KiB"
            report.raw["receiver"] = stats
        what += f"; {json_log_summary(gw)}"
        report.checks.append(what)
        slack = gw.failed  # a failed call may or may not have been recorded
        if abs(lines - gw.calls) > slack or abs(counted - gw.calls) > slack:
            report.errors.append(f"{gw.key}: {gw.calls} tools/calls but {lines} audit lines and counter {counted}")


def json_log_summary(gw: Gateway) -> str:
    """``--log-format json``: how many of the gateway's log lines are JSON (its banner on stdout is text by design)."""
    json_lines, text_lines = 0, []
    for line in gw.proc.log_text().splitlines():
        if line.startswith("{"):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                text_lines.append(line)
            else:
                json_lines += 1
        elif line.strip() and not line.startswith(("hivegate: serving", "  ")):  # the start-up banner
            text_lines.append(line)
    if not text_lines:
        return f"log: {json_lines} JSON lines, no other"
    return f"log: {json_lines} JSON lines, {len(text_lines)} not JSON (e.g. {text_lines[0].strip()[:60]!r})"


# --------------------------------------------------------------------------- the table


def ratio_cell(value: float | None, base: float | None, text: str, *, diff_unit: str | None = None) -> str:
    if value is None:
        return "n/a"
    if base is None or not base:
        return text
    if diff_unit is None:
        return f"{text} ({value / base:.2f}x)"
    return f"{text} ({value - base:+.0f} {diff_unit}, {value / base:.2f}x)"


def add_rows(
    opts: Options, latency: dict[str, list[loadgen.LatencyStats]], loads: dict[int, dict[str, Load]], report: Report
) -> None:
    keys = [v.key for v in VARIANTS]

    def row(figure: str, values: dict[str, float | None], text: Any, diff_unit: str | None = None) -> None:
        def cell(key: str) -> str:
            value = values[key]
            if value is None:
                return "n/a"
            if key == "plain":
                return text(value)
            return ratio_cell(value, values["plain"], text(value), diff_unit=diff_unit)

        report.rows.append([figure, *map(cell, keys)])

    def us(value: float) -> str:
        return f"{value:.0f} us"

    n = min(sum(s.count for s in runs) for runs in latency.values())
    p50 = {key: statistics.fmean(s.p50_ms for s in latency[key]) for key in keys}
    row(f"tools/call p50, 1 conn ({opts.blocks} blocks, n>={n:,})", dict(p50), fmt_ms)
    p90 = {key: statistics.fmean(s.p90_ms for s in latency[key]) for key in keys}
    row(f"tools/call p90, 1 conn ({opts.blocks} blocks)", dict(p90), fmt_ms)
    for callers, by_key in loads.items():
        row(
            f"tools/call/s, {callers} callers ({opts.rounds} x {opts.duration:g} s)",
            {k: by_key[k].per_second for k in keys},
            fmt_rate,
        )
        row(
            "  p99 per call under that load (worst run)",
            {k: max(by_key[k].p99s_ms, default=None) for k in keys},
            fmt_ms,
        )
        row(
            f"  CPU per call, gateway process, {callers} callers",
            {k: by_key[k].us_per_call(by_key[k].gateway_cpu_s) for k in keys},
            us,
            diff_unit="us",
        )
    for callers, by_key in loads.items():
        parts = []
        for k in keys:
            load = by_key[k]
            median = statistics.fmean(load.p50s_ms) if load.p50s_ms else float("nan")
            parts.append(f"{k} {median:.2f}")
            if load.errors:
                report.errors.append(f"{k}, {callers} callers: {load.errors} failed calls, first: {load.first_error}")
        report.notes.append(f"{callers} callers, per-call p50 under load (ms): {', '.join(parts)}")
        backend = ", ".join(f"{k} {by_key[k].us_per_call(by_key[k].backend_cpu_s) or 0:.0f}" for k in keys)
        receiver = by_key["otel"].us_per_call(by_key["otel"].receiver_cpu_s)
        report.notes.append(
            f"{callers} callers, CPU per call elsewhere: backend ({opts.backend}) {backend} us; "
            f"OTLP receiver (otel) {receiver or 0:.0f} us"
        )
    # A closed collector must not make requests slower than a working one: p50 at 1 conn, cost per call (the
    # inverse of the rate) and gateway CPU per call at each load, otel-down / otel.
    ratios = {"p50": p50["otel-down"] / p50["otel"]}
    for callers, by_key in loads.items():
        down, up = by_key["otel-down"], by_key["otel"]
        if down.per_second and up.ok and down.ok:
            ratios[f"cost@{callers}"] = up.per_second / down.per_second
            ratios[f"cpu@{callers}"] = (down.gateway_cpu_s / down.ok) / (up.gateway_cpu_s / up.ok)
    worst = max(ratios.values())
    verdict = "PASS" if worst <= COLLECTOR_DOWN_BOUND else "MISS"
    report.notes.append(
        "collector down vs up (otel-down / otel): "
        + ", ".join(f"{name} {value:.2f}x" for name, value in ratios.items())
        + f"; worst {worst:.2f}x (this script's bound <= {COLLECTOR_DOWN_BOUND}x): {verdict}"
    )
    report.raw["collector_down_vs_up"] = ratios
    if verdict == "MISS":
        report.errors.append(f"a closed collector slows requests down {worst:.2f}x compared with a working one")


def print_table(opts: Options, report: Report, elapsed: float) -> None:
    backend = "fast_backend.py (HTTP, shared)" if opts.backend == "http" else "stdio_minimal_server.py (per gateway)"
    context = [
        f"backend: {backend}; load: aiohttp in this process, N calls in flight on one session (competes for cores)",
        "columns: plain | --audit-config (file) --diagnostics-port --log-format json | + --otel-endpoint (local",
        "         receiver) | + --otel-endpoint (closed port); (ratio vs plain), CPU (difference, ratio)",
    ]
    title = f"hivegate operations features — {'quick' if opts.quick else 'full'} mode, JWT validation ON everywhere"
    header = ["figure", *[v.label for v in VARIANTS]]
    print_report(title, context, header, report, elapsed, checks=report.checks)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="What audit, metrics, JSON logs and traces cost a request.")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about half the time)")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 3, quick 2)")
    parser.add_argument("--callers", default="8,32", help="concurrent callers of the load runs (default 8,32)")
    parser.add_argument("--backend", choices=("http", "stdio"), default="http", help="fast_backend.py or stdio")
    parser.add_argument("--keep-audit", action="store_true", help="keep the audit files (printed directory)")
    parser.add_argument("--gateway-cmd", help="command that runs the hivegate CLI (default: the venv's `hivegate`)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    handle_signals()
    hivegate = find_hivegate(args.gateway_cmd)
    problem = gateway_problem(hivegate)
    if problem is not None or hivegate is None:
        print(f"ops_bench: cannot run the gateway: {problem}", file=sys.stderr)
        return 1
    opts = Options(
        quick=args.quick,
        duration=args.duration or (2.0 if args.quick else 3.0),
        warmup=0.5 if args.quick else 1.0,
        latency_seconds=2.4 if args.quick else 6.0,
        blocks=2 if args.quick else 4,
        rounds=1 if args.quick else 2,
        callers=[int(n) for n in args.callers.split(",") if n.strip()],
        backend=args.backend,
        hivegate=hivegate,
        keep_audit=args.keep_audit,
    )
    report = Report()
    started = begin(report)
    with Processes() as procs:
        print(f"logs: {procs.log_dir}", file=sys.stderr)
        try:
            run_async(bench(opts, procs, report))
        except Exception as exc:
            report.errors.append(f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
    return finish(print_table, opts, report, started, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
