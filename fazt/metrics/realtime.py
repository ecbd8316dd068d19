"""The realtime counters: plain integers keyed by app uuid, exposed as Prometheus counters.

The hot paths call these methods on the IOLoop thread, once per publish, per
fan-out, per error frame or per closed connection, never once per delivery: a
fan-out adds its size in one call. Each call is a dict update, tens of
nanoseconds. The admin listener reads the counts on the same IOLoop when it is
scraped (``families``) and names each app by its slug then, so the hot paths
never need a slug. Counts of an app uuid that the listener cannot name (an
app removed since, or another kernel's in the same process) are left out.

Keys are bounded: app uuids of this kernel's apps, ``""`` for kernel-wide
limits, and fixed enums (publication sources, error codes, close codes mapped
to a known set by the caller, limit names).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

#: Label value of a count that belongs to no app (a kernel-wide limit).
NO_APP: Final = ""
CLIENT: Final = "client"
SERVER: Final = "server"


class RealtimeCounters:
    """Every realtime counter of this process. Not thread-safe: IOLoop only."""

    __slots__ = (
        "deliveries",
        "disconnects",
        "enabled",
        "errors",
        "limit_rejections",
        "limit_warnings",
        "publications",
    )

    def __init__(self) -> None:
        #: False until the admin listener starts: then every call below is a no-op.
        self.enabled = False
        self.publications: dict[tuple[str, str], int] = {}
        self.deliveries: dict[str, int] = {}
        self.disconnects: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.limit_warnings: dict[tuple[str, str], int] = {}
        self.limit_rejections: dict[tuple[str, str], int] = {}

    # -- the hot paths' calls --------------------------------------------------------------
    def published(self, app_uuid: str, source: str) -> None:
        """One message published on a channel or app-wide; ``source`` is client or server."""
        if self.enabled:
            key = (app_uuid, source)
            self.publications[key] = self.publications.get(key, 0) + 1

    def delivered(self, app_uuid: str, count: int) -> None:
        """A fan-out wrote one frame to ``count`` local connections of the app."""
        if self.enabled:
            deliveries = self.deliveries
            deliveries[app_uuid] = deliveries.get(app_uuid, 0) + count

    def disconnected(self, app_uuid: str, code: str) -> None:
        """A connection of the app closed with ``code`` (a close code, or ``other``)."""
        if self.enabled:
            key = (app_uuid, code)
            self.disconnects[key] = self.disconnects.get(key, 0) + 1

    def error_sent(self, app_uuid: str, code: str) -> None:
        """An ``error`` frame with ``code`` went to a client of the app."""
        if self.enabled:
            key = (app_uuid, code)
            self.errors[key] = self.errors.get(key, 0) + 1

    def limit_warning(self, app_uuid: str | None, limit: str) -> None:
        """A usage crossed 80 % of ``limit`` (once per crossing)."""
        if self.enabled:
            key = (app_uuid or NO_APP, limit)
            self.limit_warnings[key] = self.limit_warnings.get(key, 0) + 1

    def limit_rejection(self, app_uuid: str | None, limit: str) -> None:
        """A request was refused because ``limit`` was reached (every refusal counts)."""
        if self.enabled:
            key = (app_uuid or NO_APP, limit)
            self.limit_rejections[key] = self.limit_rejections.get(key, 0) + 1

    # -- the scrape -------------------------------------------------------------------------
    def families(self, app_names: Mapping[str, str]) -> list[Metric]:
        """The counters as Prometheus metric families; ``app_names`` maps uuid -> slug."""
        names = {NO_APP: NO_APP, **app_names}
        deliveries = CounterMetricFamily(
            "fazt_realtime_deliveries",
            "Frames written to connections by the fan-out (one per subscriber reached).",
            labels=["app"],
        )
        for app, value in self.deliveries.items():
            if app in names:
                deliveries.add_metric([names[app]], value)
        return [
            _pairs(
                "fazt_realtime_publications",
                "Messages published: by clients, or by the server API (JS, admin).",
                ("app", "source"),
                self.publications,
                names,
            ),
            deliveries,
            _pairs(
                "fazt_realtime_disconnects",
                "Connections closed, by close code (codes fazt does not know: other).",
                ("app", "code"),
                self.disconnects,
                names,
            ),
            _pairs(
                "fazt_realtime_errors",
                "Error frames sent to clients, by error code.",
                ("app", "code"),
                self.errors,
                names,
            ),
            _pairs(
                "fazt_realtime_limit_warnings",
                "Usages that crossed 80 % of a limit (once per crossing).",
                ("app", "limit"),
                self.limit_warnings,
                names,
            ),
            _pairs(
                "fazt_realtime_limit_rejections",
                "Requests refused because a limit was reached (every refusal).",
                ("app", "limit"),
                self.limit_rejections,
                names,
            ),
        ]


def _pairs(
    name: str,
    documentation: str,
    labels: tuple[str, str],
    values: Mapping[tuple[str, str], int],
    names: Mapping[str, str],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    for (app, second), value in values.items():
        if app in names:
            family.add_metric([names[app], second], value)
    return family


#: The process's realtime counters.
REALTIME: Final = RealtimeCounters()
