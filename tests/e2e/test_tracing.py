"""`hivegate run --otel-endpoint`: spans reach a real OTLP/HTTP receiver (protobuf over HTTP on 127.0.0.1) as one tree
per MCP request; a collector that is down costs the requests nothing and the logs at most a warning."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from support.backend import closed_port, free_port
from support.gateway import fixture_command, hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream"}
SECRET_ARG = "do-not-trace-this-argument"
COLLECTOR_KEY = "collector-key-7f3a"


@dataclass
class Receiver:
    url: str
    spans: list[tuple[dict[str, Any], Span]] = field(default_factory=list)  # (resource attributes, span)
    headers: list[dict[str, str]] = field(default_factory=list)

    def named(self, name: str) -> list[Span]:
        return [span for _, span in self.spans if span.name == name]


def attrs(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = list(value.array_value.values) if kind == "array_value" else getattr(value, kind)
    return out


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """A minimal OTLP/HTTP collector: POST /v1/traces with an `ExportTraceServiceRequest` protobuf body."""
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        receiver.headers.append(dict(request.headers))
        for resource_spans in message.resource_spans:
            resource = attrs(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                receiver.spans.extend((resource, span) for span in scope_spans.spans)
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def initialize(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "trace-test", "version": "1"}}
    answer = await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
                             headers=ACCEPT)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return {**ACCEPT, "mcp-session-id": answer.headers["mcp-session-id"]}


async def echo(http: httpx.AsyncClient, url: str, headers: dict[str, str], rid: int) -> None:
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": SECRET_ARG}}}  # fmt: skip
    answer = await http.post(url, json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert SECRET_ARG in answer.text


def log_lines(stderr: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr if line.startswith("{")]


async def test_a_tool_call_reaches_the_collector_as_one_span_tree() -> None:
    async with otlp_receiver() as receiver:
        args = ["--otel-endpoint", receiver.url, "--otel-service-name", "gw-e2e", "--otel-headers",
                f"x-collector-key={COLLECTOR_KEY}", "--log-format", "json", "--log-level", "debug",
                *fixture_command()]  # fmt: skip
        env = {"OTEL_EXPORTER_OTLP_HEADERS": "x-from-env=env-value"}  # the standard variable works too
        async with hivegate_run(args, env=env) as gw, httpx.AsyncClient(timeout=30) as http:
            headers = await initialize(http, gw.url)
            await echo(http, gw.url, headers, 1)
            with anyio.fail_after(15):
                while not receiver.named("mcp tools/call"):
                    await anyio.sleep(0.05)
            stderr = list(gw.stderr)
        (root,) = receiver.named("mcp tools/call")
        assert root.kind == Span.SPAN_KIND_SERVER
        assert root.parent_span_id == b""
        root_attrs = attrs(root.attributes)
        assert root_attrs["mcp.method.name"] == "tools/call"
        assert root_attrs["mcp.tool.name"] == "echo"
        assert root_attrs["mcp.request.id"] == "1"
        assert root_attrs["mcp.session.id"] == headers["mcp-session-id"]
        assert root_attrs["hivegate.outcome"] == "success"
        assert root_attrs["http.response.status_code"] == 200
        assert root_attrs["enduser.id"]  # the local OS user
        kids = {span.name: span for _, span in receiver.spans if span.parent_span_id == root.span_id}
        assert set(kids) == {"authenticate", "backend"}
        for kid in kids.values():
            assert kid.trace_id == root.trace_id
            assert root.start_time_unix_nano <= kid.start_time_unix_nano <= kid.end_time_unix_nano
            assert kid.end_time_unix_nano <= root.end_time_unix_nano
        assert abs(root.start_time_unix_nano / 1e9 - time.time()) < 60  # epoch times, not perf_counter readings
        resources = {resource["service.name"] for resource, _ in receiver.spans}
        assert resources == {"gw-e2e"}
        assert receiver.named("mcp initialize")
        # the collector got its key; nothing else did, and no span carries the call's arguments
        assert all(h.get("x-collector-key") == COLLECTOR_KEY for h in receiver.headers)
        assert all(h.get("x-from-env") == "env-value" for h in receiver.headers)
        assert COLLECTOR_KEY not in "\n".join(stderr)
        assert not any(SECRET_ARG in str(span) for _, span in receiver.spans)


async def test_a_collector_that_is_down_costs_requests_nothing() -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    args = ["--otel-endpoint", closed, "--log-format", "json", *fixture_command()]
    async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
        headers = await initialize(http, gw.url)
        await echo(http, gw.url, headers, 1)
        with anyio.fail_after(15):  # the export fails on the batch thread, and says so once
            while not any("tracing: cannot export spans" in line for line in gw.stderr):
                await anyio.sleep(0.05)
        for rid in range(2, 7):
            started = time.perf_counter()
            await echo(http, gw.url, headers, rid)
            assert time.perf_counter() - started < 0.5
        gw.process.terminate()
        started = time.perf_counter()
        with anyio.fail_after(10):
            await gw.process.wait()
        assert time.perf_counter() - started < 5  # shutdown does not wait on the dead collector
    lines = log_lines(gw.stderr)
    assert [line["level"] for line in lines if line["level"] not in ("DEBUG", "INFO")] == ["WARNING"]
    assert not any("Traceback" in line or line.startswith(("ERROR", "CRITICAL")) for line in gw.stderr)
