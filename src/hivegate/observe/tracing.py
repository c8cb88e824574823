"""OpenTelemetry traces: one span tree per MCP request, exported over OTLP/HTTP (protobuf) to a collector, with W3C
Trace Context in (the caller's span becomes the parent) and out (the backend's spans join the trace).

`hivegate run --otel-endpoint URL` sends spans to `URL/v1/traces`. Each MCP request is one tree:

    mcp tools/call      SERVER: from the HTTP request's arrival to the call's answer
    ├── authenticate    the token check, at the start of the exchange (one check serves every call of a batch)
    ├── authorize       the policy decision, when one was made
    └── backend         the rest of the call, up to its answer (not for a denied call or a notification)

An exchange without MCP calls (a refused token, a GET stream, a DELETE) is one `mcp http` span.

Context in: a valid `traceparent` (and `tracestate`) HTTP header, or the request's `params._meta.traceparent`
(MCP SEP-414; it wins for its call), makes the `mcp …` span a child of the caller's span in the caller's trace, and
the `ParentBased` sampler follows the caller's sampled flag; without one, each call starts a trace of its own,
sampled at `--otel-sampling-rate`. Invalid values are ignored (`tracecontext`). Context out: the ids are fixed when
the call is recorded (`Tracer.trace_call`), before it is forwarded, and a sampled request tells the backend that the
gateway's `backend` span is its parent: in `params._meta.traceparent` (stdio backends, and any behind a transport
bridge or vMCP; not in `initialize`, whose params are replayed later) and in a `traceparent` header (the reverse
proxy, which forwards the body as it came, and the remote transports). A trace context the caller put in `_meta` is
replaced by the gateway's (sampled or not), and the caller's headers never go upstream. Without tracing nothing is
added or changed.

Spans are made after the fact, when the HTTP exchange ends, from the times the `Exchange` recorded: as finished
`ReadableSpan`s with those ids, handed straight to the span processor (no live SDK spans, locks or per-attribute
checks on the event loop). Export runs on the SDK's batch thread: a slow or absent collector costs spans, not
requests. An export gives up after 2 s; a failing collector is logged once as a warning (and once more when it
answers again), and while it fails only one call's spans per second are made, to find out when it is back. When
the queue is full, spans are dropped before they are made, counted, and said once. Spans never carry tokens,
headers or request params: only the method, the target's name, ids, the caller's subject, the outcome and the
authorization decision.

Over 400 lines on purpose: span building, sampling, W3C Trace Context in and out and the OTLP exporter's wiring are
one unit that nothing else imports piecemeal.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.util.types import Attributes

from hivegate import __version__
from hivegate.observe.exchange import Exchange, McpCall, TraceIds
from hivegate.observe.tracecontext import RemoteParent, incoming_parent

__all__ = ["Tracer", "otlp_tracer", "traces_url"]

logger = logging.getLogger("hivegate.tracing")

EXPORT_TIMEOUT: Final = 2.0  # seconds one export may take, retries included
QUEUE_SIZE: Final = 8192  # spans waiting for export (about 2,700 calls)
BATCH_SIZE: Final = 2048  # spans per export request
_FAILED: Final = frozenset({"error", "failure", "denied"})
_SPAN_METHOD = re.compile(r"[A-Za-z0-9_./-]{1,64}")  # span names stay low-cardinality; the attribute keeps the rest
_TARGET_KEYS: Final[Mapping[str, str]] = {"tool": "mcp.tool.name", "prompt": "mcp.prompt.name",
                                          "resource": "mcp.resource.uri"}  # fmt: skip
# The SDK's OTLP exporter logs every failed export (and each retry) as an error; `_Reporting` says it once instead.
_EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_UNSET: Final = Status(StatusCode.UNSET)
_NO_PARENT: Final = Context()


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base URL (`http://host:4318` → `http://host:4318/v1/traces`)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class Tracer:
    """An `Observer` turning each finished exchange into spans, and the `CallTracer` fixing each call's ids when it
    is recorded. It owns its sampler, resource and processor (no global state)."""

    def __init__(
        self,
        service_name: str,
        processor: SpanProcessor,
        *,
        sampling_rate: float = 1.0,
        reporting: _Reporting | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`clock`: a `perf_counter` reading, the end of an exchange that recorded none (tests inject one)."""
        self._processor = processor
        self._clock = clock
        self._reporting = reporting
        self._sampler = ParentBased(TraceIdRatioBased(sampling_rate))
        self._ids = RandomIdGenerator()
        self._resource = _Resource(Resource.create({"service.name": service_name, "service.version": __version__}))
        self._scope = InstrumentationScope("hivegate", __version__)

    def trace_call(self, exchange: Exchange, call: McpCall) -> TraceIds:
        """The call's trace and span ids and sampling decision, under the caller's span if it named one."""
        return self._trace(incoming_parent(call.params, exchange.traceparent, exchange.tracestate))

    def exchange_done(self, exchange: Exchange) -> None:
        now = self._clock()
        if not exchange.calls:
            ids = self._trace(incoming_parent(None, exchange.traceparent, exchange.tracestate))
            if ids.sampled and self._admit(1 + (exchange.auth_duration is not None)):
                self._http(exchange, ids, now)
            return
        for call in exchange.calls:
            ids = call.trace or self.trace_call(exchange, call)
            if ids.sampled and self._admit(_span_count(exchange, call)):
                self._call(exchange, call, ids, now)

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout) and stop the export thread."""
        if self._reporting is not None:
            self._reporting.closing = True
        self._processor.shutdown()
        if self._reporting is not None and self._reporting.dropped:
            logger.info("tracing: %d spans were dropped (span queue full or collector down)", self._reporting.dropped)

    # -- ids ---------------------------------------------------------------------------------------------------

    def _trace(self, parent: RemoteParent | None) -> TraceIds:
        if parent is None:
            trace_id, context = self._ids.generate_trace_id(), _NO_PARENT
        else:
            trace_id = parent.trace_id
            flags = TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT)
            remote = SpanContext(trace_id, parent.span_id, is_remote=True, trace_flags=flags)
            context = set_span_in_context(NonRecordingSpan(remote))
        sampled = self._sampler.should_sample(context, trace_id, "mcp").decision is Decision.RECORD_AND_SAMPLE
        return TraceIds(
            trace_id,
            self._ids.generate_span_id(),
            self._ids.generate_span_id(),
            parent.span_id if parent is not None else 0,
            sampled,
            parent.tracestate if parent is not None else (),
        )

    def _admit(self, spans: int) -> bool:
        return self._reporting is None or self._reporting.admit(spans)

    # -- spans -------------------------------------------------------------------------------------------------

    def _call(self, exchange: Exchange, call: McpCall, ids: TraceIds, now: float) -> None:
        ns = _Clock(exchange)
        end = call.started + call.duration if call.duration is not None else now
        method = call.method if _SPAN_METHOD.fullmatch(call.method) else "other"
        attributes = _exchange_attributes(exchange)
        attributes["mcp.method.name"] = call.method[:128]
        if call.request_id is not None:
            attributes["mcp.request.id"] = str(call.request_id)[:128]
        if call.target is not None:
            attributes[_TARGET_KEYS.get(call.target_type, "hivegate.target")] = call.target[:256]
        attributes["hivegate.outcome"] = call.outcome or "error"
        if call.error_code is not None:
            attributes["rpc.jsonrpc.error_code"] = call.error_code
            attributes["error.type"] = str(call.error_code)
        if len(exchange.calls) > 1:
            attributes["hivegate.batch.size"] = len(exchange.calls)
        root = _root_context(ids)
        self._authenticate(exchange, root, ns)
        backend_from = call.started
        if call.decision is not None:
            authz_end = call.started + (call.authz_duration or 0.0)
            decision = {"hivegate.authz.decision": call.decision, "hivegate.authz.policies": call.policies}
            self._child("authorize", root, self._ids.generate_span_id(), ns(call.started), ns(authz_end), decision)
            backend_from = authz_end
        if call.request_id is not None and call.decision != "deny":
            failed = call.outcome in ("error", "failure")
            status = Status(StatusCode.ERROR, call.error_message or call.outcome) if failed else _UNSET
            self._child(
                "backend", root, ids.backend_span_id, ns(backend_from), ns(max(end, backend_from)), None, status
            )
        status = Status(StatusCode.ERROR, call.error_message or call.outcome) if call.outcome in _FAILED else _UNSET
        start = ns(exchange.started)
        self._end(f"mcp {method}", root, _caller(ids), start, ns(end), attributes, status, SpanKind.SERVER)

    def _http(self, exchange: Exchange, ids: TraceIds, now: float) -> None:
        ns = _Clock(exchange)
        attributes = _exchange_attributes(exchange)
        status = _UNSET
        if exchange.auth_error is not None:
            attributes["hivegate.auth.error"] = exchange.auth_error
            status = Status(StatusCode.ERROR, f"authentication failed: {exchange.auth_error}")
        elif (exchange.status or 500) >= 500:
            status = Status(StatusCode.ERROR, f"HTTP {exchange.status or 500}")
        root = _root_context(ids)
        self._authenticate(exchange, root, ns)
        self._end("mcp http", root, _caller(ids), ns(exchange.started), ns(now), attributes, status, SpanKind.SERVER)

    def _authenticate(self, exchange: Exchange, root: SpanContext, ns: _Clock) -> None:
        if exchange.auth_duration is None:
            return
        status = _UNSET
        attributes: dict[str, Any] | None = None
        if exchange.auth_error is not None:
            attributes = {"hivegate.auth.error": exchange.auth_error}
            status = Status(StatusCode.ERROR, exchange.auth_error)
        elif exchange.principal is not None:
            attributes = {"hivegate.auth.kind": exchange.principal.kind}
        start = ns(exchange.started)
        end = ns(exchange.started + exchange.auth_duration)
        self._child("authenticate", root, self._ids.generate_span_id(), start, end, attributes, status)

    def _child(
        self,
        name: str,
        root: SpanContext,
        span_id: int,
        start: int,
        end: int,
        attributes: Attributes,
        status: Status = _UNSET,
    ) -> None:
        context = SpanContext(
            root.trace_id, span_id, is_remote=False, trace_flags=_SAMPLED, trace_state=root.trace_state
        )
        self._end(name, context, root, start, end, attributes, status, SpanKind.INTERNAL)

    def _end(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start: int,
        end: int,
        attributes: Attributes,
        status: Status,
        kind: SpanKind,
    ) -> None:
        span = ReadableSpan(
            name,
            context,
            parent,
            self._resource,
            attributes,
            kind=kind,
            status=status,
            start_time=start,
            end_time=end,
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(span)


class _Clock:
    """`perf_counter` readings of one exchange → epoch nanoseconds, anchored at the exchange's start."""

    __slots__ = ("_base", "_started")

    def __init__(self, exchange: Exchange) -> None:
        self._base = round(exchange.wall_time * 1e9)
        self._started = exchange.started

    def __call__(self, perf: float) -> int:
        return self._base + round((perf - self._started) * 1e9)


class _Resource(Resource):
    """A `Resource` that hashes once: the OTLP encoder groups spans by resource, hashing it (a JSON dump) per span."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(dict(resource.attributes), resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def _root_context(ids: TraceIds) -> SpanContext:
    state = TraceState(list(ids.tracestate)) if ids.tracestate else None
    return SpanContext(ids.trace_id, ids.span_id, is_remote=False, trace_flags=_SAMPLED, trace_state=state)


def _caller(ids: TraceIds) -> SpanContext | None:
    """The caller's span, the parent of the `mcp …` span (None: the gateway started the trace)."""
    if not ids.parent_span_id:
        return None
    return SpanContext(ids.trace_id, ids.parent_span_id, is_remote=True, trace_flags=_SAMPLED)


def _span_count(exchange: Exchange, call: McpCall) -> int:
    """How many spans `_call` makes for `call`."""
    backend = call.request_id is not None and call.decision != "deny"
    return 1 + (exchange.auth_duration is not None) + (call.decision is not None) + backend


def _exchange_attributes(exchange: Exchange) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "hivegate.request_id": exchange.request_id,
        "http.request.method": exchange.http_method,
        "url.path": exchange.path,
        "http.response.status_code": exchange.status or 500,
    }
    if exchange.source:
        attributes["client.address"] = exchange.source
    if exchange.session_id is not None:
        attributes["mcp.session.id"] = exchange.session_id
    if exchange.principal is not None:
        attributes["enduser.id"] = exchange.principal.subject
    return attributes


class _Reporting(SpanExporter):
    """Wraps the OTLP exporter: a collector that fails is reported once as a warning, then only counted; while
    shutting down, batches after a failed one are dropped at once so shutdown never waits on a dead collector.

    It also decides, on the event loop and before any span is built, whether a call's spans are made at all
    (`admit`): not while the collector fails (but for one call per `probe_every` seconds, so an export still tells
    when it answers again), and not when the processor's queue is full. It counts the spans it lets in and the
    spans handed to the exporter, so it knows the queue's length without asking the SDK, which would log every span
    it drops ("Queue full"); dropped spans are counted instead, and a full queue is said once."""

    def __init__(
        self, inner: SpanExporter, url: str, *, queue_size: int = QUEUE_SIZE, probe_every: float = 1.0
    ) -> None:
        self._inner = inner
        self._url = url
        self._failing = False
        self._full_reported = False
        self._queue_size = queue_size
        self._probe_every = probe_every
        self._next_probe = 0.0
        self.closing = False
        self.failures = 0
        self.exported = 0
        self.admitted = 0  # spans let in (event loop)
        self.handed = 0  # spans handed to the exporter (batch thread)
        self.dropped = 0  # spans never made: queue full, or the collector failing

    @property
    def failing(self) -> bool:
        return self._failing

    def admit(self, spans: int) -> bool:
        """Whether `spans` more spans may be made and queued now."""
        if self._failing:
            now = time.monotonic()
            if now < self._next_probe:
                self.dropped += spans
                return False
            self._next_probe = now + self._probe_every
        if self.admitted - self.handed + spans > self._queue_size:
            self.dropped += spans
            if not self._full_reported:
                self._full_reported = True
                logger.warning(
                    "tracing: the span queue is full (%d spans); spans are dropped (and counted) while it is",
                    self._queue_size,
                )
            return False
        self.admitted += spans
        return True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.handed += len(spans)
        if self.closing and self._failing:
            self.failures += 1
            return SpanExportResult.FAILURE
        try:
            result = self._inner.export(spans)
        except Exception:  # the SDK's exporter catches its own errors; this is a backstop
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
            if self._failing:
                self._failing = False
                logger.info("tracing: exporting spans to %s again", self._url)
            return result
        self.failures += 1
        if not self._failing:
            self._failing = True
            logger.warning("tracing: cannot export spans to %s; spans are dropped until it answers", self._url)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def otlp_tracer(
    endpoint: str,
    *,
    service_name: str,
    sampling_rate: float = 1.0,
    headers: Mapping[str, str] | None = None,
    timeout: float = EXPORT_TIMEOUT,
    schedule_delay: float = 1.0,
) -> Tracer:
    """A `Tracer` batching spans to the OTLP/HTTP collector at `endpoint` (its base URL); `headers` (e.g. a
    collector's API key) go on every export request and nowhere else."""
    url = traces_url(endpoint)
    logging.getLogger(_EXPORTER_LOGGER).setLevel(logging.CRITICAL)
    exporter = OTLPSpanExporter(endpoint=url, headers=dict(headers or {}), timeout=timeout)
    reporting = _Reporting(exporter, url, queue_size=QUEUE_SIZE, probe_every=schedule_delay)
    processor = BatchSpanProcessor(
        reporting,
        max_queue_size=QUEUE_SIZE,
        max_export_batch_size=BATCH_SIZE,
        schedule_delay_millis=schedule_delay * 1000,
        export_timeout_millis=timeout * 1000,
    )
    return Tracer(service_name, processor, sampling_rate=sampling_rate, reporting=reporting)
