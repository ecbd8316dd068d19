"""The hub: this node's registry of apps, connections and channels, admission, and the fan-out.

The hub holds local state only: per app, its sessions and each channel's local
subscribers. It writes only through each session's ``Transport``
(``send_frame``/``close``/``abort``) and never imports Tornado, so it is
unit-tested with fake transports. Cluster-wide answers come from the
backplane registry; the other jobs live beside it, each in its own module:
``commands`` (one connection's requests), ``membership`` (joins and leaves,
channels occupied and vacated), ``lifecycle`` (the scan, token expiry,
shutdown), ``relay`` (backplane callbacks) and ``api`` (the server API).

Delivery contract:
* every message to a channel goes through ``publish``, the one place a
  message is published (and, on a history channel, numbered); presence
  events go through ``announce``. Each is one frame, built once, written to
  each subscriber; nothing is re-encoded per subscriber;
* on a channel without history the frame goes to the local subscribers at
  once, then once to the bus for the other nodes (``deliver_channel`` there);
* on a history channel the history store numbers the publication and sends
  it through the bus to every node, this one included
  (``deliver_publication``), so every node fans a channel's publications out
  in offset order; the channel's ``ChannelFeed`` (``feed``) does that fan-out
  and holds the subscribers that are still catching up;
* messages on one channel reach each subscriber in publish order;
* a slow subscriber is closed by its transport (4101), never waited for.

Concurrency: everything runs on one event loop. Local state changes happen
synchronously before any ``await``, and every step that resumes after an
``await`` re-checks ``session.closed``, so a disconnect racing a subscribe
never leaves a dangling subscription.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final

from fazt.kernel.app import App
from fazt.metrics.realtime import REALTIME
from fazt.realtime import protocol
from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import HistoryPolicy, HistoryStore, StreamPosition
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.channels import ChannelRules, HistoryCaps
from fazt.realtime.fanout import fan_out
from fazt.realtime.feed import ChannelFeed
from fazt.realtime.limits import Limits, ThresholdWatcher
from fazt.realtime.session import Session

log = logging.getLogger("fazt.realtime")

text_frame = protocol.text_frame

#: Frames that may wait for one subscriber while its subscribe reads the history
#: store; more close it 4101 (``ChannelFeed``).
SYNC_WAITING_FRAMES: Final = 1024


class AppState:
    """One app's local state: its sessions, its channels' local subscribers and the
    feeds of its history channels."""

    __slots__ = ("app", "channels", "feeds", "limits", "rules", "sessions")

    def __init__(self, app: App, limits: Limits, caps: HistoryCaps | None = None) -> None:
        self.app = app
        self.limits = limits
        self.rules = ChannelRules.from_manifest(app.section("realtime"), caps)
        self.sessions: dict[str, Session] = {}
        #: channel name -> client id -> session (insertion-ordered)
        self.channels: dict[str, dict[str, Session]] = {}
        #: history channel with local subscribers -> its feed
        self.feeds: dict[str, ChannelFeed] = {}

    def history_policy(self, channel: str) -> HistoryPolicy | None:
        """The channel's history policy, or None when its rule keeps no history."""
        history = self.rules.rule_for(channel).history
        if history is None:
            return None
        return HistoryPolicy(
            size=history.size,
            ttl_seconds=history.ttl_seconds,
            max_bytes=history.size * self.limits.max_message_bytes,
            max_streams=self.limits.maxChannelsPerApp,
        )


class Hub:
    """Every app's local realtime state on this node, and the fan-out over it."""

    def __init__(
        self,
        bus: Bus,
        history: HistoryStore,
        limits: Limits,
        history_caps: HistoryCaps | None = None,
    ) -> None:
        self._bus = bus
        self._history = history
        #: The kernel's limits (an app's own are ``limits_for(app)``).
        self.limits = limits
        self._history_caps = history_caps or HistoryCaps()
        self._apps: dict[str, AppState] = {}

    # -- the registry of apps, sessions and channels ---------------------------------
    def app_state(self, app: App) -> AppState:
        """The app's local state, made on first use with its rules and lowered limits."""
        state = self._apps.get(app.uuid)
        if state is None or state.app is not app:
            limits = self.limits.lowered_by(app.limits_for("realtime"))
            state = AppState(app, limits, self._history_caps)
            for note in state.rules.clamped:
                log.warning("app %s: %s", app.slug, note)
            if app.uuid in self._apps:
                # The app was reloaded: keep its live connections, take the new rules.
                old = self._apps[app.uuid]
                state.sessions, state.channels = old.sessions, old.channels
                state.feeds = old.feeds
            self._apps[app.uuid] = state
        return state

    def state_of(self, app_uuid: str) -> AppState | None:
        """The app's local state when it has (had) connections here, else None."""
        return self._apps.get(app_uuid)

    def limits_for(self, app: App) -> Limits:
        return self.app_state(app).limits

    def session(self, app_uuid: str, client_id: str) -> Session | None:
        """A local session by id."""
        state = self._apps.get(app_uuid)
        return state.sessions.get(client_id) if state else None

    def sessions(self) -> Iterator[Session]:
        """Every local session (a snapshot: safe while sessions come and go)."""
        for state in tuple(self._apps.values()):
            yield from tuple(state.sessions.values())

    def connection_count(self) -> int:
        """Local connections (all apps)."""
        return sum(len(state.sessions) for state in self._apps.values())

    def add_session(self, state: AppState, session: Session) -> bool:
        """Register a new connection; True when it is the app's first one here."""
        first = not state.sessions
        state.sessions[session.client_id] = session
        return first

    def remove_session(self, session: Session) -> AppState | None:
        """Forget a connection; its app's state, or None when it was not registered."""
        state = self._apps.get(session.app_uuid)
        if state is None or state.sessions.get(session.client_id) is not session:
            return None
        del state.sessions[session.client_id]
        return state

    def add_subscriber(
        self, state: AppState, channel: str, session: Session, *, syncing: bool = False
    ) -> bool:
        """Add ``session`` to the channel's local subscribers; True when the channel
        had none here before (it is now occupied on this node).

        ``syncing`` (history channels): the subscribe reads the store next, and
        the channel's frames wait for it until ``ChannelFeed.finish``.
        """
        subscribers = state.channels.get(channel)
        occupied = subscribers is None
        if subscribers is None:
            subscribers = state.channels[channel] = {}
        subscribers[session.client_id] = session
        session.subscriptions[channel] = None
        if syncing:
            feed = state.feeds.get(channel)
            if feed is None:
                feed = state.feeds[channel] = ChannelFeed(channel, SYNC_WAITING_FRAMES)
            feed.start(session.client_id)
        return occupied

    def remove_subscriber(self, state: AppState, channel: str, session: Session) -> bool:
        """Remove ``session`` from the channel's local subscribers; True when that left
        the channel without any here (it is now vacated on this node)."""
        subscribers = state.channels.get(channel)
        if subscribers is None or subscribers.pop(session.client_id, None) is None:
            return False
        feed = state.feeds.get(channel)
        if feed is not None:
            feed.forget(session.client_id)
        if subscribers:
            return False
        del state.channels[channel]
        state.feeds.pop(channel, None)
        return True

    # -- fan-out -----------------------------------------------------------------------
    #: The one fan-out loop (``fanout.fan_out``): one bound-method call per subscriber.
    fan_out = staticmethod(fan_out)

    async def publish(
        self, state: AppState, channel: str, head: bytes, exclude: str | None = None
    ) -> StreamPosition | None:
        """The one place a message is published on a channel; its position on a history
        channel, else None.

        ``head`` is the publication before its offset (``protocol.publication_head``);
        every subscriber but the client ``exclude`` (its sender) gets the message.
        Without history it goes to the local subscribers, then once to the bus.
        With history the store numbers it and sends it to every node, this one
        included (``deliver_publication``); raises ``HistoryUnavailable`` (nothing
        sent) when the store cannot take it.
        """
        prefix = protocol.message_prefix(channel)
        policy = state.history_policy(channel)
        if policy is None:
            payload = protocol.unnumbered_message(prefix, head)
            self._fan_out_channel(state, channel, text_frame(payload), exclude)
            await self._bus.publish_channel(state.app.uuid, channel, payload)
            return None
        return await self._history.publish(state.app.uuid, channel, head, prefix, policy, exclude)

    async def announce(
        self, app_uuid: str, channel: str, payload: bytes, exclude: str | None = None
    ) -> None:
        """A presence event on a channel (never numbered): to the local subscribers (but
        ``exclude``), then once to the bus for the other nodes.

        Takes the app's uuid, not its state: a node with no client of the app (one
        that swept a dead node's presence, say) still announces to the others.
        """
        state = self._apps.get(app_uuid)
        if state is not None:
            self._fan_out_channel(state, channel, text_frame(payload), exclude)
        await self._bus.publish_channel(app_uuid, channel, payload)

    def _fan_out_channel(
        self,
        state: AppState,
        channel: str,
        frame: bytes,
        exclude: str | None = None,
        position: StreamPosition | None = None,
    ) -> None:
        subscribers = state.channels.get(channel)
        if not subscribers:
            return
        feed = state.feeds.get(channel)
        if feed is None:
            self.fan_out(subscribers, frame, exclude)
        else:
            feed.deliver(subscribers, frame, position, exclude)
        # Counted once per fan-out, never per delivery.
        REALTIME.delivered(state.app.uuid, len(subscribers) - (exclude in subscribers))

    async def publish_app(self, state: AppState, payload: bytes) -> None:
        """``broadcastAll``: to every local client of the app, then to the bus."""
        self.deliver_app(state.app.uuid, payload)
        await self._bus.publish_app(state.app.uuid, payload)

    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        """A channel message from another node: to the local subscribers only."""
        state = self._apps.get(app_uuid)
        if state is not None:
            self._fan_out_channel(state, channel, text_frame(payload))

    def deliver_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None,
    ) -> None:
        """A numbered publication from the bus (any node, this one included): through
        the channel's feed to the local subscribers, but not to ``exclude``."""
        state = self._apps.get(app_uuid)
        if state is None:
            return
        subscribers = state.channels.get(channel)
        if not subscribers:
            return
        feed = state.feeds.get(channel)
        if feed is None:
            # History came with an app reload while the channel had subscribers.
            feed = state.feeds[channel] = ChannelFeed(channel, SYNC_WAITING_FRAMES)
        feed.deliver(subscribers, text_frame(payload), position, exclude)
        REALTIME.delivered(app_uuid, len(subscribers) - (exclude in subscribers))

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        """An app-wide message: to every local client of the app."""
        state = self._apps.get(app_uuid)
        if state is not None and state.sessions:
            self.fan_out(state.sessions, text_frame(payload))
            REALTIME.delivered(app_uuid, len(state.sessions))

    def kick(self, app_uuid: str, client_id: str, reason: str) -> bool:
        """Kick a local client (``kicked``, then close 4003); False when it is not here."""
        session = self.session(app_uuid, client_id)
        if session is None or session.closed:
            return False
        session.send(protocol.kicked_frame(reason))
        session.close(protocol.CLOSE_KICKED, protocol.close_reason(protocol.CLOSE_KICKED))
        return True


class Admission:
    """Decides whether one more connection may open (else the upgrade gets HTTP 503).

    Counts are cluster-wide (the registry; during a Redis outage it answers with
    this node's own counts). Two nodes admitting at the same instant may each
    let one connection through (slack of one per node, documented).
    """

    def __init__(self, hub: Hub, registry: Registry, watcher: ThresholdWatcher) -> None:
        self._hub = hub
        self._registry = registry
        self._watcher = watcher
        #: Set by the shutdown: every new connection is refused from then on.
        self.closing = False

    async def admit(self, app: App) -> bool:
        if self.closing:
            return False
        kernel_limits = self._hub.limits
        limits = self._hub.limits_for(app)
        total = await self._registry.count_connections(None)
        per_app = await self._registry.count_connections(app.uuid)
        if total >= kernel_limits.maxConnectionsTotal:
            self._watcher.refused("maxConnectionsTotal", total, kernel_limits.maxConnectionsTotal)
            return False
        if per_app >= limits.maxConnectionsPerApp:
            self._watcher.refused(
                "maxConnectionsPerApp", per_app, limits.maxConnectionsPerApp, app.uuid
            )
            return False
        self._watcher.observe("maxConnectionsTotal", total + 1, kernel_limits.maxConnectionsTotal)
        self._watcher.observe(
            "maxConnectionsPerApp", per_app + 1, limits.maxConnectionsPerApp, app.uuid
        )
        return True
