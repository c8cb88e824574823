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
NOW = T0 + 0.005  # the tracer's clock: when an exchange that recorded no end is done
NS = 1_000_000_000
SECRET = "eyJ-secret-token-value"


def tracer(rate: float = 1.0) -> tuple[Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracer("svc-under-test", SimpleSpanProcessor(exporter), sampling_rate=rate, clock=lambda: NOW), exporter


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
    assert root.end_time == ns(NOW)


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


# -- W3C trace context: the caller's span as parent, the gateway's `backend` span named to the backend ----------------

CALLER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER_SPAN = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"


def traced_exchange(t: Tracer, traceparent: str | None = None, tracestate: str | None = None) -> Exchange:
    ex = exchange()
    ex.trace_with(t, traceparent, tracestate)
    return ex


def test_the_callers_traceparent_header_is_the_parent_of_every_call_of_the_exchange() -> None:
    t, exporter = tracer()
    ex = traced_exchange(t, TRACEPARENT, "congo=t61rcWkgMzE")
    add_call(ex, 1, at=0.001, took=0.002)
    add_call(ex, 2, at=0.001, took=0.002)
    t.exchange_done(ex)
    spans = exporter.get_finished_spans()
    roots = by_name(spans, "mcp tools/call")
    assert len(roots) == 2
    for root in roots:
        assert root.parent is not None
        assert (root.parent.trace_id, root.parent.span_id, root.parent.is_remote) == (CALLER_TRACE, CALLER_SPAN, True)
        assert root.context is not None
        assert root.context.trace_id == CALLER_TRACE
        assert dict(root.context.trace_state) == {"congo": "t61rcWkgMzE"}
        assert set(children(spans, root)) == {"authenticate", "backend"}
    assert len({s.context.span_id for s in spans if s.context is not None}) == len(spans) == 6


def test_an_exchange_without_calls_takes_the_header_parent_too() -> None:
    t, exporter = tracer()
    ex = Exchange("req-401", "/mcp", "POST", "127.0.0.1", None, started=T0, wall_time=WALL)
    ex.trace_with(t, TRACEPARENT, None)
    ex.status, ex.auth_error, ex.auth_duration = 401, "invalid_token", 0.002
    t.exchange_done(ex)
    (root,) = by_name(exporter.get_finished_spans(), "mcp http")
    assert root.parent is not None
    assert (root.parent.trace_id, root.parent.span_id) == (CALLER_TRACE, CALLER_SPAN)


@pytest.mark.parametrize("bad", ["", "00-xyz", f"00-{'0' * 32}-{CALLER_SPAN:016x}-01", TRACEPARENT.upper()])
def test_an_invalid_traceparent_starts_a_trace_of_its_own(bad: str) -> None:
    t, exporter = tracer()
    ex = traced_exchange(t, bad, "congo=t61rcWkgMzE")
    add_call(ex, 1, at=0.001, took=0.002)
    t.exchange_done(ex)
    (root,) = by_name(exporter.get_finished_spans(), "mcp tools/call")
    assert root.parent is None
    assert root.context is not None
    assert root.context.trace_id != CALLER_TRACE
    assert not root.context.trace_state


def test_meta_traceparent_wins_for_its_call() -> None:
    t, exporter = tracer()
    ex = traced_exchange(t, TRACEPARENT)
    meta_parent = f"00-{'1' * 32}-{'2' * 16}-01"
    ex.call(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "a", "_meta": {"traceparent": meta_parent}},
        }
    )
    ex.call({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "b"}})
    for call in ex.calls:
        call.answered({"jsonrpc": "2.0", "id": call.request_id, "result": {"content": []}})
    t.exchange_done(ex)
    roots = by_name(exporter.get_finished_spans(), "mcp tools/call")
    parents = {(r.attributes or {})["mcp.tool.name"]: (r.parent.trace_id, r.parent.span_id) for r in roots if r.parent}
    assert parents == {"a": (int("1" * 32, 16), int("2" * 16, 16)), "b": (CALLER_TRACE, CALLER_SPAN)}


@pytest.mark.parametrize(("rate", "flags", "expected"), [(1.0, "00", 0), (0.0, "01", 3)])
def test_the_callers_sampled_flag_decides_over_the_sampling_rate(rate: float, flags: str, expected: int) -> None:
    t, exporter = tracer(rate)
    ex = traced_exchange(t, TRACEPARENT[:-2] + flags)
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}
    ex.call(message)
    assert ("_meta" in message["params"]) is bool(expected)  # only a sampled call names the gateway's span
    ex.calls[0].answered({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    t.exchange_done(ex)
    assert len(exporter.get_finished_spans()) == expected


def test_a_recorded_request_names_the_gateways_backend_span_in_its_meta() -> None:
    t, exporter = tracer()
    ex = traced_exchange(t, TRACEPARENT, "congo=t61rcWkgMzE")
    caller_meta = {"progressToken": 7, "traceparent": f"00-{'1' * 32}-{'2' * 16}-01", "tracestate": "x=1"}
    params = {"name": "echo", "arguments": {"x": 1}, "_meta": caller_meta}
    message = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params}
    call = ex.call(message)
    call.answered({"jsonrpc": "2.0", "id": 4, "result": {"content": []}})
    t.exchange_done(ex)
    (backend,) = by_name(exporter.get_finished_spans(), "backend")
    assert backend.context is not None
    sent = message["params"]
    # the caller's _meta parent (it wins over the header) with the gateway's backend span as the parent
    assert sent["_meta"] == {"progressToken": 7, "traceparent": f"00-{'1' * 32}-{backend.context.span_id:016x}-01",
                             "tracestate": "x=1"}  # fmt: skip
    assert (sent["name"], sent["arguments"]) == ("echo", {"x": 1})
    assert call.params is params  # what the caller sent is left as it was
    assert params["_meta"] is caller_meta
    assert caller_meta["traceparent"] == f"00-{'1' * 32}-{'2' * 16}-01"


def test_no_meta_for_initialize_notifications_positional_params_or_without_tracing() -> None:
    t, _ = tracer()
    ex = traced_exchange(t)
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    positional = {"jsonrpc": "2.0", "id": 1, "method": "x/y", "params": [1, 2]}
    bare = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    for message in (initialize, note, positional, bare):
        ex.call(message)
    assert initialize["params"] == {"protocolVersion": "2025-06-18"}
    assert note["params"] == {"progress": 1}
    assert positional["params"] == [1, 2]
    assert set(bare["params"]["_meta"]) == {"traceparent"}  # a request without params gets them
    untraced = exchange()
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo"}}
    assert untraced.call(message).trace is None
    assert message["params"] == {"name": "echo"}


def test_a_trace_context_the_caller_put_in_meta_is_replaced_even_unsampled_or_in_initialize() -> None:
    t, _ = tracer(1.0)
    ex = traced_exchange(t)
    unsampled = f"00-{'1' * 32}-{'2' * 16}-00"
    call_message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "echo", "_meta": {"traceparent": unsampled}}}  # fmt: skip
    init_message = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"_meta": {"traceparent": TRACEPARENT, "tracestate": "bad state"}}}  # fmt: skip
    call, init = ex.call(call_message), ex.call(init_message)
    assert call.trace is not None
    assert not call.trace.sampled  # the caller's flag rules
    assert call_message["params"]["_meta"] == {"traceparent": f"00-{'1' * 32}-{call.trace.backend_span_id:016x}-00"}
    assert init.trace is not None
    assert init_message["params"]["_meta"] == {
        "traceparent": f"00-{TRACEPARENT[3:35]}-{init.trace.backend_span_id:016x}-01"
    }
