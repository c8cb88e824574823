"""OpenTelemetry traces: one span tree per MCP request, exported over OTLP/HTTP (protobuf) to a collector.

`hivegate run --otel-endpoint URL` sends spans to `URL/v1/traces`. Spans are made after the fact, when the HTTP
exchange ends, from the times the `Exchange` recorded; each MCP request is a trace of its own:

    mcp tools/call      SERVER: from the HTTP request's arrival to the call's answer
    ├── authenticate    the token check, at the start of the exchange (one check serves every call of a batch)
    ├── authorize       the policy decision, when one was made
    └── backend         the rest of the call, up to its answer (not for a denied call or a notification)

An exchange without MCP calls (a refused token, a GET stream, a DELETE) is one `mcp http` span.

Export runs on the SDK's batch thread, never on the event loop: a slow or absent collector costs spans, not requests.
The queue drops spans when full, an export gives up after 2 s, and a failing collector is logged once as a warning
(and once more when it answers again). Spans never carry tokens, headers or request params: only the method, the
target's name, ids, the caller's subject, the outcome and the authorization decision.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from hivegate import __version__
from hivegate.observe.exchange import Exchange, McpCall

__all__ = ["Tracer", "otlp_tracer", "traces_url"]

logger = logging.getLogger("hivegate.tracing")

EXPORT_TIMEOUT: Final = 2.0  # seconds one export may take, retries included
_FAILED: Final = frozenset({"error", "failure", "denied"})
_SPAN_METHOD = re.compile(r"[A-Za-z0-9_./-]{1,64}")  # span names stay low-cardinality; the attribute keeps the rest
_TARGET_KEYS: Final[Mapping[str, str]] = {"tool": "mcp.tool.name", "prompt": "mcp.prompt.name",
                                          "resource": "mcp.resource.uri"}  # fmt: skip
# The SDK's OTLP exporter logs every failed export (and each retry) as an error; `_Reporting` says it once instead.
_EXPORTER_LOGGER: Final = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector's base URL (`http://host:4318` → `http://host:4318/v1/traces`)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class Tracer:
    """An `Observer` turning each finished exchange into spans. It owns its `TracerProvider` (no global state)."""

    def __init__(self, service_name: str, processor: SpanProcessor, *, sampling_rate: float = 1.0) -> None:
        self._reporting: _Reporting | None = None  # set by `otlp_tracer`
        self.provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(sampling_rate)),
            resource=Resource.create({"service.name": service_name, "service.version": __version__}),
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("hivegate", __version__)

    def exchange_done(self, exchange: Exchange) -> None:
        now = time.perf_counter()
        if not exchange.calls:
            self._http(exchange, now)
            return
        for call in exchange.calls:
            self._call(exchange, call, now)

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout) and stop the export thread."""
        if self._reporting is not None:
            self._reporting.closing = True
        self.provider.shutdown()

    # -- spans -------------------------------------------------------------------------------------------------

    def _call(self, exchange: Exchange, call: McpCall, now: float) -> None:
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
        root = self._tracer.start_span(
            f"mcp {method}", kind=SpanKind.SERVER, attributes=attributes, start_time=ns(exchange.started)
        )
        if not root.is_recording():  # not sampled
            return
        if call.outcome in _FAILED:
            root.set_status(Status(StatusCode.ERROR, call.error_message or call.outcome))
        parent = set_span_in_context(root)
        self._authenticate(exchange, parent, ns)
        backend_from = call.started
        if call.decision is not None:
            authz_end = call.started + (call.authz_duration or 0.0)
            span = self._tracer.start_span(
                "authorize",
                context=parent,
                attributes={"hivegate.authz.decision": call.decision, "hivegate.authz.policies": list(call.policies)},
                start_time=ns(call.started),
            )
            span.end(ns(authz_end))
            backend_from = authz_end
        if call.request_id is not None and call.decision != "deny":
            span = self._tracer.start_span("backend", context=parent, start_time=ns(backend_from))
            if call.outcome in ("error", "failure"):
                span.set_status(Status(StatusCode.ERROR, call.error_message or call.outcome))
            span.end(ns(max(end, backend_from)))
        root.end(ns(end))

    def _http(self, exchange: Exchange, now: float) -> None:
        ns = _Clock(exchange)
        attributes = _exchange_attributes(exchange)
        if exchange.auth_error is not None:
            attributes["hivegate.auth.error"] = exchange.auth_error
        root = self._tracer.start_span(
            "mcp http", kind=SpanKind.SERVER, attributes=attributes, start_time=ns(exchange.started)
        )
        if not root.is_recording():
            return
        if exchange.auth_error is not None:
            root.set_status(Status(StatusCode.ERROR, f"authentication failed: {exchange.auth_error}"))
        elif (exchange.status or 500) >= 500:
            root.set_status(Status(StatusCode.ERROR, f"HTTP {exchange.status or 500}"))
        self._authenticate(exchange, set_span_in_context(root), ns)
        root.end(ns(now))

    def _authenticate(self, exchange: Exchange, parent: Context, ns: _Clock) -> None:
        if exchange.auth_duration is None:
            return
        span = self._tracer.start_span("authenticate", context=parent, start_time=ns(exchange.started))
        if exchange.auth_error is not None:
            span.set_attribute("hivegate.auth.error", exchange.auth_error)
            span.set_status(Status(StatusCode.ERROR, exchange.auth_error))
        elif exchange.principal is not None:
            span.set_attribute("hivegate.auth.kind", exchange.principal.kind)
        span.end(ns(exchange.started + exchange.auth_duration))


class _Clock:
    """`perf_counter` readings of one exchange → epoch nanoseconds, anchored at the exchange's start."""

    __slots__ = ("_base", "_started")

    def __init__(self, exchange: Exchange) -> None:
        self._base = round(exchange.wall_time * 1e9)
        self._started = exchange.started

    def __call__(self, perf: float) -> int:
        return self._base + round((perf - self._started) * 1e9)


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
    shutting down, batches after a failed one are dropped at once so shutdown never waits on a dead collector."""

    def __init__(self, inner: SpanExporter, url: str) -> None:
        self._inner = inner
        self._url = url
        self._failing = False
        self.closing = False
        self.failures = 0
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
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
    exporter = _Reporting(OTLPSpanExporter(endpoint=url, headers=dict(headers or {}), timeout=timeout), url)
    processor = BatchSpanProcessor(
        exporter, schedule_delay_millis=schedule_delay * 1000, export_timeout_millis=timeout * 1000
    )
    tracer = Tracer(service_name, processor, sampling_rate=sampling_rate)
    tracer._reporting = exporter
    return tracer
