"""Joins and leaves: what happens when a session enters or leaves a channel.

This is the one place that decides, and acts on:

* a channel **occupied** on this node (its first local subscriber: the node
  starts receiving it from the bus) and **vacated** (its last local subscriber
  left: the node stops receiving it);
* a user **joining** a presence channel (their first connection anywhere in
  the cluster, as the registry answers) and **leaving** it (their last one,
  including when the node holding it died), each announced once to the
  channel's subscribers on every node;
* a channel getting its first subscriber anywhere in the cluster and losing
  its last one (the registry answers that too), for the app's ``onOccupied``
  and ``onVacated`` hooks; ``onJoin`` and ``onLeave`` run with the joins and
  leaves above (``hooks``).

Whether a session may subscribe at all is decided before, by ``commands``;
the replies ``subscribed`` and ``unsubscribed`` are sent from here, so they
follow the local state change in order.

A subscribe returns ``subscribed`` only once this node receives the channel
from the bus (``Bus.subscribe_channel`` waits for that), so a message
published anywhere after the client saw ``subscribed`` reaches it. On a
history channel the subscriber is added *syncing* (its frames wait), then the
store is read (the publications after ``since`` when it recovers), and
``subscribed`` carries the stream's position; the channel's ``ChannelFeed``
merges what the read gave with what arrived meanwhile, by offset.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from typing import Any

from fazt.realtime import protocol
from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import (
    HistoryRead,
    HistoryStore,
    HistoryUnavailable,
    StreamPosition,
)
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.channels import access_refusal, is_presence
from fazt.realtime.hooks import Hooks
from fazt.realtime.hub import AppState, Hub
from fazt.realtime.limits import ThresholdWatcher
from fazt.realtime.presence import member_from_claims
from fazt.realtime.protocol import ProtocolError
from fazt.realtime.release import run_every
from fazt.realtime.session import Session


class Membership:
    """Joins and leaves of this node's sessions, local and cluster-wide."""

    def __init__(
        self,
        hub: Hub,
        bus: Bus,
        registry: Registry,
        history: HistoryStore,
        watcher: ThresholdWatcher,
        hooks: Hooks,
    ) -> None:
        self._hub = hub
        self._bus = bus
        self._registry = registry
        self._history = history
        self._watcher = watcher
        self._hooks = hooks

    # -- joining --------------------------------------------------------------------
    async def join(
        self,
        state: AppState,
        session: Session,
        channel: str,
        since: StreamPosition | None = None,
    ) -> bool:
        """Subscribe ``session`` (already allowed) and answer ``subscribed``; on a history
        channel, recover what came after ``since`` when it is given. True when this
        subscription created the channel (its first subscriber, cluster-wide).

        When a step fails, the subscription is taken back (locally and, as far
        as it goes, in the registry) before the error propagates: a client is
        never left subscribed without having been told so.
        """
        policy = state.history_policy(channel)
        # Local state first, synchronously.
        occupied = self._hub.add_subscriber(state, channel, session, syncing=policy is not None)
        joined = False
        member: dict[str, Any] | None = None
        try:
            if occupied:
                await self._occupied(state, channel)
            else:
                # Another subscriber here made the channel received; its SUBSCRIBE may
                # still wait for Redis' confirmation: wait for it too.
                await self._bus.subscribe_channel(state.app.uuid, channel)
            first = await self._registry.add_subscription(
                session.app_uuid, channel, session.client_id, session.public_info()
            )
            if first:
                self._hooks.occupied(state.app, channel)
            if is_presence(channel) and session.claims:
                member = member_from_claims(session.claims)
                joined = await self._registry.presence_join(
                    session.app_uuid, channel, session.client_id, member
                )
            if session.closed or channel not in session.subscriptions:
                # Disconnected or unsubscribed meanwhile: undo what the registry got.
                if session.closed:
                    await self._forget(state, session, channel, vacated=False)
                return first
            if policy is None:
                # Nothing to recover from: a ``since`` is answered "not recovered".
                await self.send_subscribed(
                    session, channel, recovered=False if since is not None else None
                )
            else:
                members = await self._members_of(session, channel)
                read: HistoryRead | None = None
                try:
                    read = await self._history.read(state.app.uuid, channel, policy, since=since)
                except HistoryUnavailable:
                    read = None  # answered without a position (documented)
                feed = state.feeds.get(channel)
                if feed is None or session.closed or channel not in session.subscriptions:
                    return first
                frames = feed.finish(
                    session.client_id, read, recovering=since is not None, members=members
                )
                send_frames(session, frames, state.limits.max_message_bytes)
        except Exception:
            if channel in session.subscriptions:
                del session.subscriptions[channel]
                vacated = self._hub.remove_subscriber(state, channel, session)
                with contextlib.suppress(Exception):  # the first error is the one to report
                    await self._forget(state, session, channel, vacated)
            raise
        if joined and member is not None:
            await self._joined(state, channel, member, session)
        return first

    async def _members_of(self, session: Session, channel: str) -> list[dict[str, Any]] | None:
        if not is_presence(channel):
            return None
        return await self._registry.presence_members(session.app_uuid, channel)

    async def send_subscribed(
        self,
        session: Session,
        channel: str,
        *,
        position: StreamPosition | None = None,
        recovered: bool | None = None,
    ) -> None:
        """``subscribed``, with the member list on a presence channel, ``position`` on a
        history channel and ``recovered`` when the subscribe gave ``since``."""
        members = await self._members_of(session, channel)
        if not session.closed:
            session.send(
                protocol.subscribed_frame(channel, members, position=position, recovered=recovered)
            )

    # -- leaving --------------------------------------------------------------------
    async def leave(
        self, state: AppState, session: Session, channel: str, reason: str | None = None
    ) -> None:
        """Unsubscribe and answer ``unsubscribed`` (with ``reason`` when the server
        dropped the subscription); ``not_subscribed`` when there is nothing to leave."""
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "you are not subscribed to this channel", channel
            )
        del session.subscriptions[channel]
        vacated = self._hub.remove_subscriber(state, channel, session)
        session.send(protocol.unsubscribed_frame(channel, reason))
        await self._forget(state, session, channel, vacated)

    async def leave_all(self, state: AppState, session: Session) -> None:
        """A closed connection leaves every channel (no replies: nobody is listening).

        Every channel is released even when releasing another one failed; the
        first error is raised at the end.
        """
        channels = list(session.subscriptions)
        session.subscriptions.clear()
        vacated = [name for name in channels if self._hub.remove_subscriber(state, name, session)]
        await run_every(
            functools.partial(self._forget, state, session, name, name in vacated)
            for name in channels
        )

    async def forget_user(self, session: Session) -> None:
        """The connection is anonymous again (its token expired): the registry's user
        index (kick by user) no longer lists it."""
        await self._registry.set_connection_user(session.app_uuid, session.client_id, None)

    async def leave_disallowed(
        self,
        state: AppState,
        session: Session,
        claims: Mapping[str, Any] | None,
        reason: str,
    ) -> None:
        """Leave, with ``unsubscribed`` and ``reason``, every channel that ``claims``
        (None: anonymous) may not use: an ``auth`` and a token expiry re-check every
        subscription (``channels.access_refusal``). Presence leaves are announced
        as the current identity (``session.claims``), so call this before the
        session takes the new claims."""
        rules = state.rules

        async def leave_if_still_there(channel: str) -> None:
            if channel in session.subscriptions:
                await self.leave(state, session, channel, reason)

        await run_every(
            functools.partial(leave_if_still_there, channel)
            for channel in list(session.subscriptions)
            if access_refusal(rules, channel, claims) is not None
        )

    async def _forget(self, state: AppState, session: Session, channel: str, vacated: bool) -> None:
        """The registry side of leaving a channel (after the local state changed).

        Its three steps (the subscription, the vacated channel, the presence
        entry) all run even when one of them fails.
        """
        app_uuid = session.app_uuid
        claims = session.claims

        async def unsubscribe() -> None:
            hold = self._hooks.wants(state.app, channel, "occupancy")
            last = await self._registry.remove_subscription(
                app_uuid, channel, session.client_id, hold_vacancy=hold
            )
            if last and hold:
                self._hooks.vacancy_held(state.app, channel)

        async def vacate() -> None:
            if vacated and channel not in state.channels:
                await self._vacated(state, channel)

        async def leave_presence() -> None:
            if is_presence(channel) and claims:
                member = member_from_claims(claims)
                left = await self._registry.presence_leave(
                    app_uuid, channel, session.client_id, str(member["id"])
                )
                if left:
                    await self.left(state.app.uuid, channel, member)

        await run_every((unsubscribe, vacate, leave_presence))

    # -- the decisions' effects -----------------------------------------------------------
    async def _occupied(self, state: AppState, channel: str) -> None:
        """The channel got its first subscriber on this node."""
        await self._bus.subscribe_channel(state.app.uuid, channel)

    async def _vacated(self, state: AppState, channel: str) -> None:
        """The channel lost its last subscriber on this node."""
        app_uuid = state.app.uuid
        await self._bus.unsubscribe_channel(app_uuid, channel)
        used = await self._registry.count_channels(app_uuid)
        self._watcher.observe("maxChannelsPerApp", used, state.limits.maxChannelsPerApp, app_uuid)

    async def _joined(
        self, state: AppState, channel: str, member: dict[str, Any], session: Session
    ) -> None:
        """A user's first connection joined a presence channel: tell everyone else."""
        self._hooks.joined(state.app, channel, member)
        payload = protocol.presence_payload(channel, "join", member)
        await self._hub.announce(state.app.uuid, channel, payload, exclude=session.client_id)

    async def left(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        """A user's last connection left a presence channel (here, or on a node that died)."""
        self._hooks.left(app_uuid, channel, member)
        payload = protocol.presence_payload(channel, "leave", member)
        await self._hub.announce(app_uuid, channel, payload)


def send_frames(session: Session, frames: list[bytes], chunk_bytes: int) -> None:
    """Send ``frames`` in order, joined into writes of up to ``chunk_bytes`` each.

    A recovery may send many publications at once: joined, they take a few
    places of the connection's bounded outgoing queue instead of one each, so
    the queue's bound in bytes (``outgoingQueueSize * maxMessageSizeKB``)
    still holds.
    """
    chunk: list[bytes] = []
    size = 0
    for frame in frames:
        if chunk and size + len(frame) > chunk_bytes:
            session.send(b"".join(chunk))
            chunk, size = [], 0
        chunk.append(frame)
        size += len(frame)
    if chunk:
        session.send(chunk[0] if len(chunk) == 1 else b"".join(chunk))
