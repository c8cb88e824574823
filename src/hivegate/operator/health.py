"""The operator's own endpoints: `/healthz` (alive and, when leading, watching) and `/metrics` (Prometheus).

Metrics: `hivegate_operator_reconciles_total{kind,result}` (result: ok, invalid, error),
`hivegate_operator_reconcile_errors_total{kind}` (an API or internal error: retried),
`hivegate_operator_reconcile_duration_seconds{kind}` (histogram), `hivegate_operator_leader` (1 while leading).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["OperatorMetrics", "serve_health"]


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "hivegate_operator_reconciles", "Reconciliations by kind and result", ["kind", "result"],
            registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "hivegate_operator_reconcile_errors", "Reconciliations that failed and will be retried", ["kind"],
            registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "hivegate_operator_reconcile_duration_seconds", "Time to reconcile one resource", ["kind"],
            registry=self.registry,
        )  # fmt: skip
        self.leader = Gauge("hivegate_operator_leader", "1 while this replica leads", registry=self.registry)

    @asynccontextmanager
    async def timed(self, kind: str) -> AsyncIterator[list[str]]:
        """Time a reconciliation; the caller appends its result (`ok`, `invalid`) to the list it gets."""
        result: list[str] = []
        start = time.perf_counter()
        try:
            yield result
        except BaseException:
            self.errors.labels(kind).inc()
            self.reconciles.labels(kind, "error").inc()
            raise
        finally:
            self.duration.labels(kind).observe(time.perf_counter() - start)
        self.reconciles.labels(kind, result[0] if result else "ok").inc()


async def serve_health(
    host: str, port: int, metrics: OperatorMetrics, alive: Callable[[], bool]
) -> tuple[web.AppRunner, int]:
    """Serve `/healthz` and `/metrics` on host:port (0: a free port); the runner and the port bound."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n") if alive() else web.Response(status=503, text="not running\n")

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
