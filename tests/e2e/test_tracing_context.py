"""W3C Trace Context through `hivegate run --otel-endpoint` (and `hivegate vmcp serve`), with real processes: a
caller's `traceparent` (HTTP header or `params._meta`) becomes the parent of the gateway's spans, and the backend
is told the gateway's `backend` span as its parent (an HTTP header for HTTP backends, `params._meta.traceparent` for
stdio ones), so its own spans join the trace the collector received. Without tracing, no traceparent reaches a
backend."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from e2e.test_tracing import Receiver, attrs, initialize, otlp_receiver
from support.backend import fixture_http_server
from support.gateway import REPO, hivegate_run, hivegate_vmcp

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

META_ECHO = os.path.join(REPO, "tests", "fixtures", "meta_echo_server.py")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"


def otel(receiver: Receiver, *more: str) -> list[str]:
    return ["--otel-endpoint", receiver.url, "--log-format", "json", "--log-level", "debug", *more]


async def call_tool(
    http: httpx.AsyncClient,
    url: str,
    session: dict[str, str],
    rid: int,
    name: str,
    *,
    headers: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `tools/call` over raw HTTP (so the test controls every header); its result, from JSON or an event stream."""
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if meta is not None:
        params["_meta"] = meta
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
    answer = await http.post(url, json=body, headers={**session, **(headers or {})})
    assert answer.status_code == 200, answer.text
    if answer.headers["content-type"].startswith("text/event-stream"):
        events = [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:")]
        (reply,) = [e for e in events if e.get("id") == rid and "method" not in e]
    else:
        reply = answer.json()
    assert reply["result"]["isError"] is False, reply
    return reply["result"]  # type: ignore[no-any-return]


def text(result: dict[str, Any]) -> Any:
    return json.loads(result["content"][0]["text"])


async def spans_of(receiver: Receiver, rid: int, until: Callable[[list[Span]], bool] | None = None) -> list[Span]:
    """Every exported span of the trace of tools/call `rid` (waits, with a deadline, for its root and backend)."""

    def trace() -> list[Span]:
        roots = [s for s in receiver.named("mcp tools/call") if attrs(s.attributes)["mcp.request.id"] == str(rid)]
        if not roots:
            return []
        return [s for _, s in receiver.spans if s.trace_id == roots[0].trace_id]

    with anyio.fail_after(15):
        while not (found := trace()) or not any(s.name == "backend" for s in found) or (until and not until(found)):
            await anyio.sleep(0.05)
    return found


def one(spans: list[Span], name: str) -> Span:
    (span,) = [s for s in spans if s.name == name]
    return span


def parts(traceparent: str) -> tuple[str, str, str, str]:
    version, trace_id, parent_id, flags = traceparent.split("-")
    return version, trace_id, parent_id, flags


async def test_a_callers_traceparent_header_makes_the_gateway_span_its_child_and_its_sampled_flag_rules() -> None:
    async with otlp_receiver() as receiver:
        args = otel(receiver, "--otel-sampling-rate", "0", "--", sys.executable, META_ECHO)
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            session = await initialize(http, gw.url)
            not_sampled = f"00-{'ab' * 16}-{'cd' * 8}-00"
            await call_tool(http, gw.url, session, 1, "meta", headers={"traceparent": not_sampled})
            await call_tool(http, gw.url, session, 2, "meta")  # no parent: sampling 0 leaves it out
            headers = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
            await call_tool(http, gw.url, session, 3, "meta", headers=headers)
            spans = await spans_of(receiver, 3)
            stderr = "\n".join(gw.stderr)
        root = one(spans, "mcp tools/call")
        assert root.trace_id.hex() == TRACE_ID
        assert root.parent_span_id.hex() == CALLER_SPAN
        assert root.trace_state == TRACESTATE
        assert {s.name for s in spans} == {"mcp tools/call", "authenticate", "backend"}
        # only the call whose caller sampled it was exported (at --otel-sampling-rate 0), in the caller's trace
        assert {attrs(s.attributes)["mcp.request.id"] for s in receiver.named("mcp tools/call")} == {"3"}
        assert {s.trace_id.hex() for _, s in receiver.spans} == {TRACE_ID}
        assert TRACE_ID not in stderr  # the caller's trace context is never logged, even at debug level
        assert TRACESTATE not in stderr


@pytest.mark.parametrize(
    "bad",
    [
        f"00-{TRACE_ID}-{CALLER_SPAN}-1",  # wrong length
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{CALLER_SPAN}-01",  # forbidden version
        f"00-{TRACE_ID[:-1]}x-{CALLER_SPAN}-01",  # not hex
        f"00-{TRACE_ID.upper()}-{CALLER_SPAN}-01",  # upper case
        f"00-{TRACE_ID}-{CALLER_SPAN}-01-extra",  # version 00 has four fields
    ],
)
async def test_an_invalid_traceparent_is_ignored(bad: str) -> None:
    async with otlp_receiver() as receiver:
        async with hivegate_run(otel(receiver, "--", sys.executable, META_ECHO)) as gw, httpx.AsyncClient() as http:
            session = await initialize(http, gw.url)
            seen = text(await call_tool(http, gw.url, session, 1, "meta", headers={"traceparent": bad}))
            spans = await spans_of(receiver, 1)
        root = one(spans, "mcp tools/call")
        assert root.parent_span_id == b""  # a trace of its own, started by the gateway
        assert root.trace_id.hex() not in (TRACE_ID, TRACE_ID.lower(), "0" * 32)
        assert parts(seen["traceparent"])[1] == root.trace_id.hex()


async def test_meta_traceparent_is_the_parent_and_wins_over_the_header() -> None:
    meta_trace, meta_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    async with otlp_receiver() as receiver:
        async with hivegate_run(otel(receiver, "--", sys.executable, META_ECHO)) as gw, httpx.AsyncClient() as http:
            session = await initialize(http, gw.url)
            meta = {"traceparent": f"00-{meta_trace}-{meta_span}-01", "tracestate": "vendor=meta", "custom": "kept"}
            seen = text(await call_tool(http, gw.url, session, 1, "meta", headers={"traceparent": TRACEPARENT},
                                        meta=meta))  # fmt: skip
            spans = await spans_of(receiver, 1)
        root = one(spans, "mcp tools/call")
        assert (root.trace_id.hex(), root.parent_span_id.hex()) == (meta_trace, meta_span)
        assert root.trace_state == "vendor=meta"
        # the stdio backend got the gateway's backend span as its parent (not the caller's), the rest of _meta kept
        assert seen["traceparent"] == f"00-{meta_trace}-{one(spans, 'backend').span_id.hex()}-01"
        assert seen["tracestate"] == "vendor=meta"
        assert seen["custom"] == "kept"


async def test_a_stdio_backend_gets_the_gateways_backend_span_in_meta() -> None:
    async with otlp_receiver() as receiver:
        async with hivegate_run(otel(receiver, "--", sys.executable, META_ECHO)) as gw, httpx.AsyncClient() as http:
            session = await initialize(http, gw.url)
            seen = text(await call_tool(http, gw.url, session, 1, "meta"))
            spans = await spans_of(receiver, 1)
        version, trace_id, parent_id, flags = parts(seen["traceparent"])
        assert (version, flags) == ("00", "01")
        root = one(spans, "mcp tools/call")
        assert trace_id == root.trace_id.hex()
        assert parent_id == one(spans, "backend").span_id.hex()
        assert parent_id in {s.span_id.hex() for s in spans}


async def test_an_http_backend_gets_a_traceparent_header_naming_the_gateways_backend_span() -> None:
    async with otlp_receiver() as receiver, fixture_http_server() as backend:
        async with hivegate_run(otel(receiver, backend)) as gw, httpx.AsyncClient(timeout=30) as http:
            session = await initialize(http, gw.url)
            seen = text(await call_tool(http, gw.url, session, 1, "headers"))
            caller = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
            seen_with_caller = text(await call_tool(http, gw.url, session, 2, "headers", headers=caller))
            first, second = await spans_of(receiver, 1), await spans_of(receiver, 2)
        _, trace_id, parent_id, flags = parts(seen["traceparent"])
        assert trace_id == one(first, "mcp tools/call").trace_id.hex()
        assert parent_id == one(first, "backend").span_id.hex()
        assert flags == "01"
        # with a caller's context: the caller's trace, but the gateway's span as the parent, never the caller's
        assert seen_with_caller["traceparent"] == f"00-{TRACE_ID}-{one(second, 'backend').span_id.hex()}-01"
        assert seen_with_caller["tracestate"] == TRACESTATE


async def test_a_legacy_sse_backend_gets_the_traceparent_header_too() -> None:
    async with otlp_receiver() as receiver, fixture_http_server("--sse") as backend:
        args = otel(receiver, "--transport", "sse", backend)
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            session = await initialize(http, gw.url)
            seen = text(await call_tool(http, gw.url, session, 1, "headers", headers={"traceparent": TRACEPARENT}))
            spans = await spans_of(receiver, 1)
        assert seen["traceparent"] == f"00-{TRACE_ID}-{one(spans, 'backend').span_id.hex()}-01"


async def test_without_tracing_no_traceparent_reaches_a_backend() -> None:
    caller = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    async with fixture_http_server() as backend, httpx.AsyncClient(timeout=30) as http:
        async with hivegate_run([backend]) as gw:
            session = await initialize(http, gw.url)
            seen = text(await call_tool(http, gw.url, session, 1, "headers", headers=caller))
        assert not {"traceparent", "tracestate"} & {key.lower() for key in seen}
        async with hivegate_run(["--", sys.executable, META_ECHO]) as gw:
            session = await initialize(http, gw.url)
            seen = text(await call_tool(http, gw.url, session, 1, "meta", headers=caller, meta={"custom": "kept"}))
        assert seen == {"custom": "kept"}


async def test_vmcp_serve_propagates_to_its_backends_too(tmp_path: Path) -> None:
    async with otlp_receiver() as receiver:
        config = {
            "name": "traced",
            "backends": [{"name": "echo", "command": sys.executable, "args": [META_ECHO]}],
            "incomingAuth": {"type": "anonymous"},
            "telemetry": {"endpoint": receiver.url, "tracingEnabled": True, "samplingRate": 1.0},
        }
        path = tmp_path / "vmcp.yaml"
        path.write_text(yaml.safe_dump(config))
        async with hivegate_vmcp(["--config", str(path), "--port", "0"]) as gw, httpx.AsyncClient() as http:
            session = await initialize(http, gw.url)
            tools = await http.post(gw.url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers=session)
            (name,) = [tool["name"] for tool in tools.json()["result"]["tools"]]
            seen = text(await call_tool(http, gw.url, session, 1, name, headers={"traceparent": TRACEPARENT}))
            spans = await spans_of(receiver, 1)
        assert seen["traceparent"] == f"00-{TRACE_ID}-{one(spans, 'backend').span_id.hex()}-01"
        assert one(spans, "mcp tools/call").parent_span_id.hex() == CALLER_SPAN
