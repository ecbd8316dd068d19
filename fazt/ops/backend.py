"""What the admin API asks of a running kernel, answered from its realtime core.

Every view is cluster-wide: counts, channel lists, subscribers and presence
come from the backplane registry (Redis when the kernel has one), and a kick
or a broadcast reaches every node through the realtime server API
(``RealtimeAPI``), as one from a JS handler would. The metrics gauges are this
process's own: computed from the hub's dicts when ``/metrics`` is scraped, so
they cost nothing in between.

Every refusal is an ``AdminError`` with its HTTP status: 400 for bad input,
404 for an unknown app, 503 while realtime is not running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fazt.kernel.app import App
from fazt.kernel.registry import AppRegistry
from fazt.metrics.realtime import REALTIME
from fazt.realtime.api import RealtimeAPIError
from fazt.realtime.backplane.registry_redis import RedisRegistry
from fazt.realtime.channels import is_presence, is_valid_channel_name
from fazt.realtime.core import RealtimeCore
from fazt.realtime.plugin import RealtimePlugin

#: The largest ``limit`` of a channel listing.
MAX_CHANNEL_LIMIT = 10_000


class AdminError(Exception):
    """A refused admin request: ``status`` and a sentence for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RealtimeAdmin(Collector):
    """The admin operations over one kernel's apps and its realtime plugin; as a
    ``prometheus-client`` collector, its realtime metrics (``collect``)."""

    def __init__(self, apps: AppRegistry, realtime: RealtimePlugin) -> None:
        self._apps = apps
        self._realtime = realtime
        #: Set when the process starts its graceful stop: not ready any more.
        self.shutting_down = False

    # -- lookups ---------------------------------------------------------------------------
    def _core(self) -> RealtimeCore:
        try:
            return self._realtime.core
        except RuntimeError as error:
            raise AdminError(503, "realtime is not started") from error

    def _app(self, slug: str) -> App:
        app = self._apps.by_slug(slug)
        if app is None:
            raise AdminError(404, f"unknown app {slug!r}")
        return app

    def app_names(self) -> dict[str, str]:
        """App uuid -> slug, for naming counters keyed by uuid."""
        return {app.uuid: app.slug for app in self._apps.all()}

    # -- the API -----------------------------------------------------------------------------
    async def apps(self) -> list[dict[str, Any]]:
        """``[{slug, uuid, connections, channels}]``, cluster-wide, by slug."""
        registry = self._core().backplane.registry
        return [
            {
                "slug": app.slug,
                "uuid": app.uuid,
                "connections": await registry.count_connections(app.uuid),
                "channels": await registry.count_channels(app.uuid),
            }
            for app in sorted(self._apps.all(), key=lambda app: app.slug)
        ]

    async def channels(self, slug: str, limit: int | None = None) -> list[dict[str, Any]]:
        """``[{channel, subscribers, members?}]``: busiest first; ``members`` (users
        present) on presence channels."""
        app = self._app(slug)
        registry = self._core().backplane.registry
        listed: list[dict[str, Any]] = []
        for channel, subscribers in await registry.channel_counts(app.uuid, limit):
            entry: dict[str, Any] = {"channel": channel, "subscribers": subscribers}
            if is_presence(channel):
                entry["members"] = len(await registry.presence_members(app.uuid, channel))
            listed.append(entry)
        return listed

    async def channel(self, slug: str, channel: str) -> dict[str, Any]:
        """``{channel, subscribers: [{clientId, user?}], members?}``."""
        app = self._app(slug)
        if not is_valid_channel_name(channel):
            raise AdminError(400, f"invalid channel name {channel!r}")
        registry = self._core().backplane.registry
        subscribers = []
        for info in await registry.subscribers(app.uuid, channel):
            entry: dict[str, Any] = {"clientId": info.get("clientId")}
            user = _user_of(info.get("metadata"))
            if user is not None:
                entry["user"] = user
            subscribers.append(entry)
        subscribers.sort(key=lambda entry: str(entry["clientId"]))
        found: dict[str, Any] = {"channel": channel, "subscribers": subscribers}
        if is_presence(channel):
            found["members"] = await registry.presence_members(app.uuid, channel)
        return found

    async def kick(self, slug: str, body: object) -> int:
        """``{"clientId": id}`` or ``{"user": id}`` (and an optional ``reason``): the
        number of connections closed with 4003, cluster-wide."""
        app = self._app(slug)
        fields = _object(body, allowed={"clientId", "user", "reason"})
        target = {key: fields[key] for key in ("clientId", "user") if key in fields}
        if len(target) != 1:
            raise AdminError(400, 'give exactly one of "clientId" or "user"')
        try:
            return await self._core().api(app).kick_target(target, fields.get("reason"))
        except RealtimeAPIError as error:
            raise AdminError(400, str(error)) from error

    async def broadcast(self, slug: str, body: object) -> None:
        """``{"channel": C, "data": D}`` to a channel, ``{"data": D}`` to every
        connection of the app."""
        app = self._app(slug)
        fields = _object(body, allowed={"channel", "data"})
        if "data" not in fields:
            raise AdminError(400, '"data" is required')
        api = self._core().api(app)
        try:
            if "channel" in fields:
                await api.broadcast(fields["channel"], fields["data"])
            else:
                await api.broadcast_all(fields["data"])
        except RealtimeAPIError as error:
            raise AdminError(400, str(error)) from error

    # -- health --------------------------------------------------------------------------------
    def readiness(self) -> str | None:
        """Why this process does not take connections now, or None when it does."""
        if self.shutting_down:
            return "shutting down"
        try:
            core = self._realtime.core
        except RuntimeError:
            return "realtime is not started"
        if core.admission.closing:
            return "shutting down"
        if not self.backplane()["up"]:
            return "the backplane (Redis) is unreachable"
        return None

    def backplane(self) -> dict[str, Any]:
        """``{kind, up, dropped}``: ``memory`` is always up; Redis as its link says."""
        try:
            registry = self._realtime.core.backplane.registry
        except RuntimeError:
            return {"kind": "none", "up": False, "dropped": 0}
        if isinstance(registry, RedisRegistry):
            link = registry.link
            return {"kind": "redis", "up": registry.connected, "dropped": link.dropped_messages}
        return {"kind": "memory", "up": True, "dropped": 0}

    # -- metrics ----------------------------------------------------------------------------
    def collect(self) -> list[Metric]:
        """The realtime families: counters, this process's gauges, the backplane's state
        (``prometheus-client`` calls this at every scrape)."""
        names = self.app_names()
        families = REALTIME.families(names)
        families.extend(self._gauges(names))
        backplane = self.backplane()
        up = GaugeMetricFamily(
            "fazt_realtime_backplane_up", "1 while the backplane (Redis) is connected, else 0."
        )
        up.add_metric([], 1.0 if backplane["up"] else 0.0)
        dropped = CounterMetricFamily(
            "fazt_realtime_backplane_dropped",
            "Messages for other nodes dropped because Redis was unreachable or busy.",
        )
        dropped.add_metric([], float(backplane["dropped"]))
        return [*families, up, dropped]

    def _gauges(self, names: Mapping[str, str]) -> list[Metric]:
        connections = GaugeMetricFamily(
            "fazt_realtime_connections", "Open connections on this process.", labels=["app"]
        )
        subscriptions = GaugeMetricFamily(
            "fazt_realtime_subscriptions",
            "Subscriptions of this process's connections.",
            labels=["app"],
        )
        channels = GaugeMetricFamily(
            "fazt_realtime_channels",
            "Channels with at least one subscriber on this process.",
            labels=["app"],
        )
        try:
            hub = self._realtime.core.hub
        except RuntimeError:
            hub = None
        for uuid, slug in sorted(names.items(), key=lambda item: item[1]):
            state = hub.state_of(uuid) if hub is not None else None
            if state is None:
                counts = (0, 0, 0)
            else:
                subscribed = sum(len(members) for members in state.channels.values())
                counts = (len(state.sessions), subscribed, len(state.channels))
            connections.add_metric([slug], counts[0])
            subscriptions.add_metric([slug], counts[1])
            channels.add_metric([slug], counts[2])
        return [connections, subscriptions, channels]

    def totals(self) -> dict[str, int]:
        """This process's publications and deliveries so far (the dashboard's rates)."""
        names = self.app_names()
        return {
            "publications": sum(
                count for (uuid, _), count in REALTIME.publications.items() if uuid in names
            ),
            "deliveries": sum(
                count for uuid, count in REALTIME.deliveries.items() if uuid in names
            ),
        }


def _object(body: object, *, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AdminError(
            400, f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    return body


def _user_of(metadata: object) -> dict[str, Any] | None:
    """``{id, name?}`` of a subscriber whose registry entry carries token claims."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("sub"), str):
        return None
    user: dict[str, Any] = {"id": metadata["sub"]}
    if isinstance(metadata.get("name"), str):
        user["name"] = metadata["name"]
    return user
