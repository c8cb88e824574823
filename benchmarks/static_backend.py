"""A trivial MCP backend that costs almost nothing: HAProxy answering every request itself, from its config.

On a 2-core machine the backend and the load generator take CPU from the gateway under test. `fast_backend.py`
(Python, uvicorn) spends ~45 us of CPU per request at full speed; HAProxy's `http-request return` ~12 us (measured
here with `wrk -t1 -c32` against it alone: 84,000 requests a second). So when a benchmark asks how the gateway
itself scales (`workers_bench.py --backend haproxy`), this backend leaves it most of the cores.

It answers a POST as `fast_backend.py` does: `initialize` with a result and an `Mcp-Session-Id`, a message with no
`id` (a notification) with 202, any other request with a small tool result, each echoing the request's `id`: an
integer as sent, a string quoted as read (a string of digits comes back as a number, and one holding `"` or `\\`
unescaped: the benchmarks send integers). Only the top-level `id` and `method` count, not a tool's arguments.
GET is 405 (no event stream), DELETE 200.
"""

from __future__ import annotations

from pathlib import Path

from harness import (
    HAPROXY_HINT,
    HOST,
    ManagedProcess,
    Processes,
    free_port,
    haproxy_executable,
    haproxy_head,
    wait_for_port,
)

__all__ = ["start"]

SESSION_ID = "bench-static-backend-session"
_INITIALIZE = (
    '"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":false}},'
    '"serverInfo":{"name":"bench-static-backend","version":"1.0"}}'
)
_TOOL = '"result":{"content":[{"type":"text","text":"ok"}],"isError":false}'


def _answer(result: str) -> str:
    """An `lf-string` argument: the JSON-RPC response with the request's id (`txn.id`) and `result`."""
    text = '{"jsonrpc":"2.0","id":%[var(txn.id)],' + result + "}"
    return '"' + text.replace('"', '\\"') + '"'


def config(port: int) -> str:
    lines = [
        *haproxy_head("  nbthread 1"),
        "frontend mcp",
        f"  bind {HOST}:{port}",
        "  option http-buffer-request",
        "  http-request return status 405 if METH_GET",
        "  http-request return status 200 if METH_DELETE",
        # the top-level members only: a tool argument named `id` or `method` is not the request's
        "  http-request set-var(txn.method) req.body,json_query('$.method')",
        "  http-request set-var(txn.text_id) req.body,json_query('$.id')",
        "  http-request return status 202 if !{ var(txn.text_id) -m found }",  # a notification (or a response)
        "  http-request set-var(txn.id) req.body,json_query('$.id','int')",  # an integer: its digits as sent
        r'  http-request set-var-fmt(txn.id) "\"%[var(txn.text_id)]\"" if !{ var(txn.id) -m reg ^-?[0-9]+$ }',
        f"  http-request return status 200 content-type application/json hdr mcp-session-id {SESSION_ID}"
        f" lf-string {_answer(_INITIALIZE)} if {{ var(txn.method) -m str initialize }}",
        f"  http-request return status 200 content-type application/json lf-string {_answer(_TOOL)}",
    ]
    return "\n".join(lines) + "\n"


def start(procs: Processes, folder: Path) -> tuple[ManagedProcess, str]:
    """Start HAProxy as the backend; return it and its MCP URL."""
    executable = haproxy_executable()
    if executable is None:
        raise RuntimeError(HAPROXY_HINT)
    port = free_port()
    path = folder / "static-backend.cfg"
    path.write_text(config(port))
    proc = procs.start("static-backend", [executable, "-db", "-f", str(path)])
    wait_for_port(port, timeout=10, proc=proc)
    return proc, f"http://{HOST}:{port}/mcp"
