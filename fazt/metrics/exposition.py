"""Turning counting on, and the registry the admin listener serves at ``/metrics``.

Each admin listener has its own ``CollectorRegistry``: the standard process,
platform and garbage-collector collectors of ``prometheus-client``, the JS
and HTTP metrics (``requests``), and the collectors the listener adds (the
realtime counters and the gauges it computes from the hub at scrape time).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.registry import Collector

from fazt.metrics.realtime import REALTIME
from fazt.metrics.requests import REQUESTS


def enable_counting() -> None:
    """Start counting (idempotent): the admin listener does it when it starts."""
    REALTIME.enabled = True
    REQUESTS.enabled = True


def counting_enabled() -> bool:
    return REALTIME.enabled


def metrics_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry with the standard collectors, the JS and HTTP metrics, and ``collectors``."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for metric in (REQUESTS.js_executions, REQUESTS.js_seconds, REQUESTS.http_requests):
        registry.register(metric)
    for collector in collectors:
        registry.register(collector)
    return registry
