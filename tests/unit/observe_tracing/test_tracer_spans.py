"""The span tree the tracer makes from a finished exchange: names, parents, attributes, times, and what never
goes into a span (tokens, headers, request params)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hivegate.core.principal import Principal
from hivegate.observe.exchange import Exchange, McpCall
from hivegate.observe.tracing import Tracer, traces_url

WALL = 1_750_000_000.0  # the exchange's epoch time
T0 = 500.0  # its perf_counter reading
NS = 1_000_000_000
SECRET = "eyJ-secret-token-value"


def tracer(rate: float = 1.0) -> tuple[Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracer("svc-under-test", SimpleSpanProcessor(exporter), sampling_rate=rate), exporter


def exchange(*, status: int = 200, session: str | None = "sess-1") -> Exchange:
    ex = Exchange("req-abc", "/mcp", "POST", "10.0.0.7", "agent/1.0", started=T0, wall_time=WALL)
    ex.principal = Principal("user-7", "https://idp", "jwt", {"sub": "user-7", "access_token": SECRET})
    ex.session_id = session
    ex.status = status
    ex.auth_duration = 0.004
    return ex


def add_call(ex: Exchange, rid: int, *, at: float, took: float, name: str = "echo") -> McpCall:
    params = {"name": name, "arguments": {"x": SECRET}}
    message = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
    call = ex.call(message)
    call.started = T0 + at
    call.answered({"jsonrpc": "2.0", "id": rid, "result": {"content": [], "isError": False}})
    call.duration = took
    return call


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> dict[str, ReadableSpan]:
    assert parent.context is not None
    found = {}
    for span in spans:
        if span.parent is not None and span.parent.span_id == parent.context.span_id:
            assert span.context is not None
            assert span.context.trace_id == parent.context.trace_id
            found[span.name] = span
    return found


def ns(perf: float) -> int:
    return round(WALL * 1e9) + round((perf - T0) * 1e9)


def no_secrets(spans: Sequence[ReadableSpan]) -> None:
    for span in spans:
        text = repr(dict(span.attributes or {})) + repr(span.status.description) + span.name
        assert SECRET not in text
        assert "arguments" not in text
        assert "agent/1.0" not in text  # a header


def test_a_tool_call_is_a_server_span_with_authenticate_authorize_and_backend_children() -> None:
    t, exporter = tracer()
    ex = exchange()
    call = add_call(ex, 3, at=0.010, took=0.050)
    call.decided(True, ("policy0", "policy2"))
    call.authz_duration = 0.002  # the decision came 2 ms into the call
    t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["authenticate", "authorize", "backend", "mcp tools/call"]
    (root,) = by_name(spans, "mcp tools/call")
    assert root.parent is None
    assert root.kind is SpanKind.SERVER
    assert root.status.status_code is StatusCode.UNSET
    assert root.resource.attributes["service.name"] == "svc-under-test"
    attrs = dict(root.attributes or {})
    assert attrs == {
        "hivegate.request_id": "req-abc",
        "http.request.method": "POST",
        "url.path": "/mcp",
        "http.response.status_code": 200,
        "client.address": "10.0.0.7",
        "mcp.session.id": "sess-1",
        "enduser.id": "user-7",
        "mcp.method.name": "tools/call",
        "mcp.request.id": "3",
        "mcp.tool.name": "echo",
        "hivegate.outcome": "success",
    }
    kids = children(spans, root)
    assert set(kids) == {"authenticate", "authorize", "backend"}
    assert kids["authorize"].attributes == {"hivegate.authz.decision": "allow",
                                            "hivegate.authz.policies": ("policy0", "policy2")}  # fmt: skip
    # times: the root spans the exchange's start to the answer; children sit inside it, in order
    assert (root.start_time, root.end_time) == (ns(T0), ns(T0 + 0.060))
    auth, authz, backend = kids["authenticate"], kids["authorize"], kids["backend"]
    assert (auth.start_time, auth.end_time) == (ns(T0), ns(T0 + 0.004))
    assert (authz.start_time, authz.end_time) == (ns(T0 + 0.010), ns(T0 + 0.012))
    assert (backend.start_time, backend.end_time) == (ns(T0 + 0.012), ns(T0 + 0.060))
    assert root.start_time is not None
    assert root.end_time is not None
    for kid in kids.values():
        assert kid.start_time is not None
        assert kid.end_time is not None
        assert root.start_time <= kid.start_time <= kid.end_time <= root.end_time
    no_secrets(spans)


def test_a_denied_call_has_an_error_status_and_no_backend_span() -> None:
    t, exporter = tracer()
    ex = exchange()
    message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "delete_namespace"}}
    call = ex.call(message)
    call.started = T0 + 0.002
    call.decided(False, ())
    call.answered({"jsonrpc": "2.0", "id": 9, "error": {"code": 403, "message": "Unauthorized"}})
    call.duration = 0.001
    t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    (root,) = by_name(spans, "mcp tools/call")
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "Unauthorized"
    attrs = root.attributes or {}
    assert attrs["hivegate.outcome"] == "denied"
    assert attrs["mcp.tool.name"] == "delete_namespace"
    assert attrs["error.type"] == "403"
    kids = children(spans, root)
    assert set(kids) == {"authenticate", "authorize"}
    assert (kids["authorize"].attributes or {})["hivegate.authz.decision"] == "deny"
    assert root.end_time == ns(T0 + 0.003)


def test_a_401_is_one_http_span_with_the_auth_failure() -> None:
    t, exporter = tracer()
    ex = Exchange("req-401", "/mcp", "POST", "127.0.0.1", None, started=T0, wall_time=WALL)
    ex.status, ex.auth_error, ex.auth_duration = 401, "invalid_token", 0.002
    t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["authenticate", "mcp http"]
    (root,) = by_name(spans, "mcp http")
    assert root.kind is SpanKind.SERVER
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "authentication failed: invalid_token"
    attrs = root.attributes or {}
    assert attrs["http.response.status_code"] == 401
    assert attrs["hivegate.auth.error"] == "invalid_token"
    assert "enduser.id" not in attrs
    (auth,) = children(spans, root).values()
    assert auth.status.status_code is StatusCode.ERROR
    assert (auth.start_time, auth.end_time) == (ns(T0), ns(T0 + 0.002))
    assert root.end_time is not None
    assert root.end_time >= ns(T0 + 0.002)


def test_a_token_in_the_query_has_no_authenticate_span() -> None:
    t, exporter = tracer()
    ex = Exchange("req-q", "/mcp", "POST", "127.0.0.1", None, started=T0, wall_time=WALL)
    ex.status, ex.auth_error = 401, "token_in_query"
    t.exchange_done(ex)
    (span,) = exporter.get_finished_spans()
    assert span.name == "mcp http"
    assert (span.attributes or {})["hivegate.auth.error"] == "token_in_query"


def test_a_batch_of_two_calls_is_two_traces_sharing_the_request_id() -> None:
    t, exporter = tracer()
    ex = exchange()
    add_call(ex, 1, at=0.005, took=0.020, name="echo")
    add_call(ex, 2, at=0.006, took=0.030, name="whoami")
    t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    roots = by_name(spans, "mcp tools/call")
    assert len(roots) == 2
    assert len(spans) == 6  # each: root, authenticate, backend (no policies: no authorize)
    traces = set()
    for root in roots:
        assert root.context is not None
        traces.add(root.context.trace_id)
        attrs = root.attributes or {}
        assert attrs["hivegate.request_id"] == "req-abc"
        assert attrs["hivegate.batch.size"] == 2
        assert set(children(spans, root)) == {"authenticate", "backend"}
    assert len(traces) == 2
    names = {(r.attributes or {})["mcp.tool.name"]: r for r in roots}
    assert names["echo"].end_time == ns(T0 + 0.025)
    assert names["whoami"].end_time == ns(T0 + 0.036)
    no_secrets(spans)


def test_a_notification_has_no_backend_span() -> None:
    t, exporter = tracer()
    ex = exchange(status=202)
    call = ex.call({"jsonrpc": "2.0", "method": "notifications/initialized"})
    call.started, call.duration = T0 + 0.001, 0.0
    t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    (root,) = by_name(spans, "mcp notifications/initialized")
    assert "mcp.request.id" not in (root.attributes or {})
    assert set(children(spans, root)) == {"authenticate"}


def test_an_odd_method_does_not_become_a_span_name() -> None:
    t, exporter = tracer()
    ex = exchange()
    call = ex.call({"jsonrpc": "2.0", "id": 1, "method": "x y " * 50})
    call.started, call.duration = T0, 0.001
    t.exchange_done(ex)
    names = {s.name for s in exporter.get_finished_spans()}
    assert "mcp other" in names


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 30)])
def test_sampling_rate(rate: float, expected: int) -> None:
    t, exporter = tracer(rate)
    for _ in range(10):
        ex = exchange()
        add_call(ex, 1, at=0.001, took=0.001)
        t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    assert len(spans) == expected  # root, authenticate, backend per call


def test_two_tracers_keep_their_own_providers() -> None:
    a, spans_a = tracer()
    b, spans_b = tracer()
    ex = exchange()
    add_call(ex, 1, at=0.001, took=0.001)
    a.exchange_done(ex)
    assert len(spans_a.get_finished_spans()) == 3
    assert spans_b.get_finished_spans() == ()
    a.shutdown()
    b.exchange_done(ex)
    assert len(spans_b.get_finished_spans()) == 3


def test_traces_url() -> None:
    assert traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert traces_url("https://otel.example/") == "https://otel.example/v1/traces"
    assert traces_url("https://otel.example/v1/traces") == "https://otel.example/v1/traces"
