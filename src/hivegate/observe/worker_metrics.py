"""The `/metrics` of several workers (`--workers`) as one Prometheus text page, each sample labelled `worker`.

Every worker keeps its own counters; the worker that gets the scrape asks the others for theirs and answers with
all of them, one family at a time (a family's `HELP` and `TYPE` once), so `sum by (...)` gives the gateway's totals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["merge_worker_pages"]


def merge_worker_pages(pages: Sequence[tuple[int, bytes]]) -> bytes:
    """One exposition page from each worker's (`index`, page)."""
    families: dict[str, Metric] = {}
    for index, page in pages:
        for family in text_string_to_metric_families(page.decode("utf-8")):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(index)}
                merged.add_sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families.values()))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
