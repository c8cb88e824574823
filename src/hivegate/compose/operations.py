"""Audit, metrics and tracing for a gateway: the observers of every finished exchange, built the same way for
`run` and `vmcp serve` (an audit file that cannot be written fails here, at start-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from hivegate.compose.lifecycle import Lifecycle
from hivegate.observe.audit import AuditConfig, Auditor
from hivegate.observe.exchange import Observer
from hivegate.observe.metrics import Metrics

__all__ = ["Tracing", "observers"]


@dataclass(frozen=True)
class Tracing:
    """Where spans go (an OTLP/HTTP collector's base URL) and how many."""

    endpoint: str
    service_name: str
    sampling_rate: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold a collector's API key


def observers(
    lifecycle: Lifecycle,
    *,
    component: str,
    transport: str,
    audit: AuditConfig | None = None,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
) -> list[Observer]:
    """The observers for these settings; their shutdown hooks and summary lines go to `lifecycle`."""
    found: list[Observer] = []
    if audit is not None:
        auditor = Auditor(audit, component=component, transport=transport)
        auditor.open()
        found.append(auditor)

        async def close_audit() -> None:
            auditor.close()

        lifecycle.on_shutdown(close_audit)
        lifecycle.summary.append(f"audit: {audit.log_file or 'standard output'}")
    if metrics is not None:
        found.append(metrics)
    if tracing is not None:
        from hivegate.observe.tracing import otlp_tracer, traces_url

        tracer = otlp_tracer(
            tracing.endpoint,
            service_name=tracing.service_name,
            sampling_rate=tracing.sampling_rate,
            headers=dict(tracing.headers),
        )
        found.append(tracer)

        async def stop_tracing() -> None:  # exports what is queued; bounded by the export timeout
            await asyncio.to_thread(tracer.shutdown)

        lifecycle.on_shutdown(stop_tracing)
        lifecycle.summary.append(
            f"tracing: OTLP/HTTP to {traces_url(tracing.endpoint)} (sampling {tracing.sampling_rate:g})"
        )
    return found
