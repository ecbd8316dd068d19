"""JS executions and HTTP requests, as ``prometheus-client`` metrics.

JS handlers finish on worker threads, so these are ``prometheus-client``'s own
thread-safe metrics, labelled with the app's slug (the caller has it at hand).
They are created unregistered: the admin listener registers them in its own
registry (``exposition.metrics_registry``).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

#: Outcomes of a JS execution (the ``outcome`` label).
JS_OUTCOMES: Final = ("ok", "error", "cpu_limit", "memory_limit", "wall_limit")

#: Seconds: from 1 ms up to the default wall-clock limit (10 s) and past it.
JS_SECONDS_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def status_class(status: int) -> str:
    """``404`` -> ``"4xx"``: the ``status_class`` label (a bounded set)."""
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


class RequestMetrics:
    """The JS and HTTP metrics of this process. Thread-safe."""

    def __init__(self) -> None:
        #: False until the admin listener starts: then every call below is a no-op.
        self.enabled = False
        self.js_executions = Counter(
            "fazt_js_executions",
            "api/*.js handler runs, by outcome (ok, error, or the limit that stopped it).",
            ["app", "outcome"],
            registry=None,
        )
        self.js_seconds = Histogram(
            "fazt_js_execution_seconds",
            "Wall-clock time of api/*.js handler runs on a JS worker.",
            ["app"],
            buckets=JS_SECONDS_BUCKETS,
            registry=None,
        )
        self.http_requests = Counter(
            "fazt_http_requests",
            "HTTP requests answered, by app (empty: no app) and status class.",
            ["app", "status_class"],
            registry=None,
        )

    def js_executed(self, app: str, outcome: str, seconds: float) -> None:
        """One handler run of ``app`` ended with ``outcome`` after ``seconds``."""
        if self.enabled:
            self.js_executions.labels(app, outcome).inc()
            self.js_seconds.labels(app).observe(seconds)

    def http_answered(self, app: str, status: int) -> None:
        """One HTTP request of ``app`` (``""``: none) was answered with ``status``."""
        if self.enabled:
            self.http_requests.labels(app, status_class(status)).inc()


#: The process's JS and HTTP metrics.
REQUESTS: Final = RequestMetrics()
