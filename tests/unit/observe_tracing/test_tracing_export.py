"""Export to a collector that is down: requests never wait for it, it is reported once as a warning (never an
error), shutdown is bounded; and the cost of tracing per exchange."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from hivegate.core.principal import Principal
from hivegate.observe.exchange import Exchange
from hivegate.observe.tracing import Tracer, _Reporting, otlp_tracer
from support.backend import closed_port


def finished_exchange() -> Exchange:
    ex = Exchange.open("/mcp", "POST", "127.0.0.1", None)
    ex.principal = Principal("me", "local", "local")
    ex.status, ex.session_id, ex.auth_duration = 200, "s-1", 0.0001
    call = ex.call({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}})
    call.decided(True, ("policy0",))
    call.answered({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    return ex


class Flaky(SpanExporter):
    def __init__(self) -> None:
        self.up = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS if self.up else SpanExportResult.FAILURE


def test_a_failing_collector_is_reported_once_and_its_return_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hivegate.tracing")
    inner = Flaky()
    reporting = _Reporting(inner, "http://collector/v1/traces")
    for _ in range(3):
        assert reporting.export([]) is SpanExportResult.FAILURE
    assert reporting.failures == 3
    inner.up = True
    assert reporting.export([]) is SpanExportResult.SUCCESS
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "tracing: cannot export spans to http://collector/v1/traces; spans are dropped until it answers"),
        ("INFO", "tracing: exporting spans to http://collector/v1/traces again"),
    ]


def test_while_closing_batches_after_a_failure_are_dropped_at_once() -> None:
    inner = Flaky()
    reporting = _Reporting(inner, "http://collector/v1/traces")
    reporting.export([])
    reporting.closing = True
    inner.up = True  # not even asked
    assert reporting.export([]) is SpanExportResult.FAILURE
    assert reporting.failures == 2


def test_a_closed_collector_costs_requests_nothing_and_logs_at_most_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tracer = otlp_tracer(
        f"http://127.0.0.1:{closed_port()}", service_name="svc", headers={"x-api-key": "collector-secret"}
    )
    assert tracer._reporting is not None
    started = time.perf_counter()
    for _ in range(500):
        tracer.exchange_done(finished_exchange())
    per_exchange = (time.perf_counter() - started) / 500
    assert per_exchange < 0.005  # measured ~0.1 ms; only span creation runs on the caller's thread
    deadline = time.monotonic() + 10
    while tracer._reporting.failures == 0:
        assert time.monotonic() < deadline, "the export never failed"
        time.sleep(0.05)
    started = time.perf_counter()
    tracer.shutdown()
    assert time.perf_counter() - started < 5
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("tracing: cannot export spans to http://127.0.0.1:" in w for w in warnings)
    assert "collector-secret" not in caplog.text


class Stuck(SpanExporter):
    """A collector that takes its time: every export waits until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def test_a_full_queue_drops_spans_before_they_are_made_counts_them_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    inner = Stuck()
    reporting = _Reporting(inner, "http://collector/v1/traces", queue_size=60)
    processor = BatchSpanProcessor(reporting, max_queue_size=60, max_export_batch_size=30, schedule_delay_millis=50)
    tracer = Tracer("svc", processor, reporting=reporting)
    for _ in range(200):  # 4 spans each
        tracer.exchange_done(finished_exchange())
    inner.release.set()
    tracer.shutdown()
    assert reporting.dropped > 0
    assert inner.spans + reporting.dropped == 800  # every span exported or counted as dropped
    assert inner.spans <= 60 + 30  # what the queue held, plus the batch the collector was stuck on
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["tracing: the span queue is full (60 spans); spans are dropped (and counted) while it is"]
    assert not [r for r in caplog.records if "Queue full" in r.getMessage()]  # the SDK's own line, per span


class Counting(SpanProcessor):
    """Exports every span at once, through `exporter`, and counts the spans made."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.made = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.made += 1
        self.exporter.export([span])


def test_while_the_collector_fails_spans_are_not_made_but_for_a_probe_now_and_then() -> None:
    inner = Flaky()
    reporting = _Reporting(inner, "http://collector/v1/traces", probe_every=0.2)
    processor = Counting(reporting)
    tracer = Tracer("svc", processor, reporting=reporting)
    tracer.exchange_done(finished_exchange())  # 4 spans; the first export fails
    assert processor.made == 4
    for _ in range(100):
        tracer.exchange_done(finished_exchange())
    assert processor.made <= 8  # at most one probe within the interval
    inner.up = True
    deadline = time.monotonic() + 10
    while reporting.failing:  # the next probe finds the collector back
        assert time.monotonic() < deadline, "no probe reached the collector"
        tracer.exchange_done(finished_exchange())
        time.sleep(0.01)
    made = processor.made
    for _ in range(10):
        tracer.exchange_done(finished_exchange())
    assert processor.made == made + 40  # exporting again: every call's spans are made
    assert reporting.dropped > 0
