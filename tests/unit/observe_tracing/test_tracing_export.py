"""Export to a collector that is down: requests never wait for it, it is reported once as a warning (never an
error), shutdown is bounded; and the cost of tracing per exchange."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hivegate.core.principal import Principal
from hivegate.observe.exchange import Exchange
from hivegate.observe.tracing import _Reporting, otlp_tracer
from support.backend import free_port


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
        f"http://127.0.0.1:{free_port()}", service_name="svc", headers={"x-api-key": "collector-secret"}
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
