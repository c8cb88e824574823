"""The operator's own endpoints on a real port: `/healthz` follows the watch loop, `/metrics` counts reconciliations
by result, errors (retried) apart, with their durations."""

from __future__ import annotations

import httpx
import pytest

from hivegate.operator.health import OperatorMetrics, serve_health
from hivegate.operator.kube import ApiError

pytestmark = pytest.mark.anyio


async def test_healthz_and_metrics_say_what_the_reconciler_did() -> None:
    metrics = OperatorMetrics()
    running = [True]
    runner, port = await serve_health("127.0.0.1", 0, metrics, lambda: running[0])
    try:
        async with metrics.timed("MCPServer"):
            pass
        async with metrics.timed("MCPServer") as result:
            result.append("invalid")  # a broken spec: a condition, not a retry
        with pytest.raises(ApiError):
            async with metrics.timed("VirtualMCPServer"):
                raise ApiError(503, "PATCH /apis/apps/v1/...: unavailable")  # kopf retries it
        metrics.leader.set(1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            page = await http.get("/metrics")
            running[0] = False  # the watch loop ended
            assert (await http.get("/healthz")).status_code == 503
    finally:
        await runner.cleanup()
    assert page.headers["content-type"].startswith("text/plain")
    lines = set(page.text.splitlines())
    assert {
        'hivegate_operator_reconciles_total{kind="MCPServer",result="ok"} 1.0',
        'hivegate_operator_reconciles_total{kind="MCPServer",result="invalid"} 1.0',
        'hivegate_operator_reconciles_total{kind="VirtualMCPServer",result="error"} 1.0',
        'hivegate_operator_reconcile_errors_total{kind="VirtualMCPServer"} 1.0',
        'hivegate_operator_reconcile_duration_seconds_count{kind="MCPServer"} 2.0',
        'hivegate_operator_reconcile_duration_seconds_count{kind="VirtualMCPServer"} 1.0',
        "hivegate_operator_leader 1.0",
    } <= lines
    assert not any(line.startswith('hivegate_operator_reconcile_errors_total{kind="MCPServer"}') for line in lines)
