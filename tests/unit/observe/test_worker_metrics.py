"""`/metrics` of several workers merged into one page: every sample labelled with its worker, a family once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hivegate.observe.worker_metrics import merge_worker_pages


def page(calls: int, sessions: int) -> bytes:
    registry = CollectorRegistry()
    Counter("hivegate_calls", "Calls", ["method"], registry=registry).labels("tools/call").inc(calls)
    Gauge("hivegate_active_sessions", "Open client sessions", registry=registry).set(sessions)
    Histogram("hivegate_seconds", "Durations", registry=registry, buckets=(0.1, 1.0)).observe(0.5)
    return generate_latest(registry)


def test_each_workers_samples_are_labelled_and_each_family_appears_once() -> None:
    merged = merge_worker_pages([(0, page(3, 1)), (1, page(5, 2))]).decode()
    assert merged.count("# TYPE hivegate_calls_total counter") == 1  # as a single page writes it
    assert merged.count("# HELP hivegate_active_sessions Open client sessions") == 1
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(merged)
        for s in family.samples
    }
    assert samples[("hivegate_calls_total", (("method", "tools/call"), ("worker", "0")))] == 3
    assert samples[("hivegate_calls_total", (("method", "tools/call"), ("worker", "1")))] == 5
    assert samples[("hivegate_active_sessions", (("worker", "1"),))] == 2
    assert samples[("hivegate_seconds_bucket", (("le", "1.0"), ("worker", "0")))] == 1
