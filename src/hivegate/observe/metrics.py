"""Prometheus metrics, served on the diagnostics port (`/metrics`), never on the MCP port.

- `hivegate_mcp_requests_total{method, outcome}` and `hivegate_mcp_request_duration_seconds{method}`: every MCP
  request (outcome as in the audit trail: success, failure, error, denied, application_error);
- `hivegate_auth_failures_total{reason}`: rejected authentications (`missing_token`, `invalid_token`, …);
- `hivegate_authz_decisions_total{decision}`: Cedar decisions (allow, deny);
- `hivegate_http_requests_total{status}`: HTTP exchanges on the MCP endpoint;
- `hivegate_backend_duration_seconds{method}`: the part of each forwarded request spent past the gateway's own
  checks (the backend's latency, as the gateway sees it);
- `hivegate_check_up{check}`: each readiness check (`backend`, `authz policies`, …), 1 passing, 0 failing, run
  when scraped (cached for 2 s);
- `hivegate_backend_restarts_total`: backends that went away and were started again (a stdio server that exited);
- `hivegate_active_sessions` (read when scraped);
- `hivegate_token_grants_total{grant_type, outcome}` from the embedded authorization server.
Methods outside the MCP vocabulary are counted as `other`, so a client cannot create unbounded label values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hivegate.observe.exchange import Exchange

__all__ = ["CONTENT_TYPE", "Metrics"]

logger = logging.getLogger("hivegate.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_KNOWN_METHODS = frozenset(
    {
        "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
        "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
        "logging/setLevel", "completion/complete", "notifications/initialized", "notifications/cancelled",
        "notifications/progress", "notifications/roots/list_changed",
    }
)  # fmt: skip
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Live(Collector):
    """Gauges read at scrape time from callables (sessions, backend state)."""

    def __init__(self, readers: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self._readers = readers

    def collect(self) -> Iterable[Metric]:
        for name, (doc, read) in self._readers.items():
            try:
                value = float(read())
            except Exception:  # a reader that fails leaves its gauge out of this scrape
                logger.debug("metrics: reading %s failed", name, exc_info=True)
                continue
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            yield family


class Metrics:
    """An `Observer` keeping the gateway's metrics in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("hivegate_mcp_requests", "MCP requests by method and outcome", ["method", "outcome"],
                                registry=r)  # fmt: skip
        self.duration = Histogram("hivegate_mcp_request_duration_seconds", "MCP request duration", ["method"],
                                  buckets=_BUCKETS, registry=r)  # fmt: skip
        self.http = Counter("hivegate_http_requests", "HTTP exchanges on the MCP endpoint", ["status"], registry=r)
        self.auth_failures = Counter("hivegate_auth_failures", "Rejected authentications", ["reason"], registry=r)
        self.decisions = Counter("hivegate_authz_decisions", "Authorization decisions", ["decision"], registry=r)
        self.grants = Counter("hivegate_token_grants", "Token endpoint grants", ["grant_type", "outcome"], registry=r)
        self.backend = Histogram("hivegate_backend_duration_seconds", "Time spent at the backend", ["method"],
                                 buckets=_BUCKETS, registry=r)  # fmt: skip
        self.checks = Gauge("hivegate_check_up", "Readiness checks (1 passing)", ["check"], registry=r)
        self.restarts = Counter("hivegate_backend_restarts", "Backends that went away and were started again",
                                registry=r)  # fmt: skip
        self.idle_stops = Counter("hivegate_stdio_idle_stops", "Stdio server processes stopped for being idle",
                                  registry=r)  # fmt: skip
        self._live: dict[str, tuple[str, Callable[[], float]]] = {}
        r.register(_Live(self._live))

    def grant(self, grant_type: str, outcome: str) -> None:
        """One token request at the embedded authorization server (`AuthServerRoutes(on_grant=...)`)."""
        self.grants.labels(grant_type, outcome).inc()

    def backend_restarted(self) -> None:
        self.restarts.inc()

    def stdio_idle_stop(self) -> None:
        self.idle_stops.inc()

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read when scraped."""
        self._live[name] = (doc, read)

    def exchange_done(self, exchange: Exchange) -> None:
        self.http.labels(str(exchange.status or 0)).inc()
        if exchange.auth_error is not None:
            self.auth_failures.labels(exchange.auth_error).inc()
        for call in exchange.calls:
            method = call.method if call.method in _KNOWN_METHODS else "other"
            self.requests.labels(method, call.outcome or "error").inc()
            if call.duration is not None and call.request_id is not None:
                self.duration.labels(method).observe(call.duration)
                if call.decision != "deny":
                    self.backend.labels(method).observe(max(0.0, call.duration - (call.authz_duration or 0.0)))
            if call.decision is not None:
                self.decisions.labels(call.decision).inc()

    def checked(self, results: Iterable[tuple[str, bool]]) -> None:
        """The latest readiness results, (check name, passing)."""
        for name, ok in results:
            self.checks.labels(name).set(1.0 if ok else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
