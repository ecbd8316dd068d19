"""Prometheus text in and out: merging several workers' ``/metrics`` into one answer.

Each worker renders its own registry with ``prometheus-client``; the worker
that answers a scrape parses every worker's text with ``prometheus-client``'s
parser, adds the label ``worker="<slot>"`` to every sample, and renders the
families again. The slot (0 to N-1) is stable across restarts, so a restarted
worker's counters continue the same series (Prometheus sees a counter reset,
which ``rate()`` handles) and the label set stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

#: The label every sample gets in a merged answer.
WORKER_LABEL = "worker"


class _Families(Collector):
    """A collector that yields fixed families (a registry renders them)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(families: list[Metric]) -> bytes:
    """Prometheus text of ``families``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def merge_workers(texts: Iterable[tuple[str, str]]) -> bytes:
    """One Prometheus text from ``(worker slot, text)`` pairs, every sample labelled
    with its worker; families keep the help and type of their first appearance."""
    merged: dict[str, Metric] = {}
    for worker, text in texts:
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                labels = {**sample.labels, WORKER_LABEL: worker}
                target.samples.append(sample._replace(labels=labels))
    return render(list(merged.values()))
