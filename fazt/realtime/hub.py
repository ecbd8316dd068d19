"""The hub: apps -> channels -> subscribers, and every decision about them.

The hub owns each local connection's ``Session`` and writes only through its
``Transport`` (``send_frame``/``close``/``abort``); it never imports Tornado, so
it is unit-tested with fake transports. Cluster-wide answers (counts,
subscriber lists, presence members, join/leave deduplication) come from the
``Backplane`` registry; local fan-out uses local state only.

Delivery contract:
* a broadcast is encoded once to JSON text and once to frame bytes, and those
  bytes go to every local subscriber, then (once) to the backplane for the other
  nodes; nothing is re-encoded per subscriber;
* messages on one channel reach each subscriber in publish order (one node);
* a client publish is not echoed to its sender;
* a slow subscriber is closed by its transport (4101), never waited for.

Concurrency: everything runs on one event loop. Local state changes happen
synchronously before any ``await``, and every step that resumes after an
``await`` re-checks ``session.closed``, so a disconnect racing a subscribe
never leaves a dangling subscription.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenError, TokenService
from fazt.realtime import protocol
from fazt.realtime.backplane.base import Backplane
from fazt.realtime.channels import (
    ChannelRule,
    ChannelRules,
    check_access,
    is_presence,
    is_valid_channel_name,
)
from fazt.realtime.limits import Limits, Notifier, ThresholdWatcher
from fazt.realtime.presence import member_from_claims, presence_event, user_from_claims
from fazt.realtime.protocol import ProtocolError
from fazt.realtime.session import Due, HeartbeatPolicy, Session, Transport

log = logging.getLogger("fazt.realtime")

text_frame = protocol.text_frame
_PING_FRAME = protocol.text_frame(protocol.PING_PAYLOAD)
_PONG_FRAME = protocol.text_frame(protocol.PONG_PAYLOAD)
_RESTART_FRAME = protocol.text_frame(protocol.SERVER_RESTART_PAYLOAD)
MAX_KICK_REASON = 200


class HubError(Exception):
    """A server-API call was refused (bad argument, data over the size limit).

    ``str(error)`` is a sentence safe to show the caller.
    """


class AppHub:
    """One app's local state: its sessions and its channels' local subscribers."""

    __slots__ = ("app", "channels", "limits", "rules", "sessions")

    def __init__(self, app: App, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.rules = ChannelRules.from_manifest(app.section("realtime"))
        self.sessions: dict[str, Session] = {}
        #: channel name -> client id -> session (insertion-ordered)
        self.channels: dict[str, dict[str, Session]] = {}


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Hub:
    """Every app's realtime state on this node. Implements ``BackplaneHandler``."""

    def __init__(
        self,
        backplane: Backplane,
        tokens: TokenService,
        *,
        limits: Limits | None = None,
        heartbeat: HeartbeatPolicy | None = None,
        notify: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
        token_clock: Callable[[], float] = time.time,
    ) -> None:
        self.backplane = backplane
        self.tokens = tokens
        self.limits = limits or Limits()
        self.heartbeat = heartbeat or HeartbeatPolicy(30.0, 10.0, self.limits.idleTimeoutSeconds)
        self._watcher = ThresholdWatcher(notify or (lambda *_: None))
        self._clock = clock
        self._wall_ms = wall_ms
        self._token_clock = token_clock
        self._apps: dict[str, AppHub] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    # -- apps and limits -------------------------------------------------------------
    def app_hub(self, app: App) -> AppHub:
        """The app's local state, made on first use with its rules and lowered limits."""
        state = self._apps.get(app.uuid)
        if state is None or state.app is not app:
            limits = self.limits.lowered_by(app.limits_for("realtime"))
            state = AppHub(app, limits)
            if app.uuid in self._apps:
                # The app was reloaded: keep its live connections, take the new rules.
                old = self._apps[app.uuid]
                state.sessions, state.channels = old.sessions, old.channels
            self._apps[app.uuid] = state
        return state

    def limits_for(self, app: App) -> Limits:
        return self.app_hub(app).limits

    async def admit(self, app: App) -> bool:
        """May one more connection open for ``app``? (False: answer HTTP 503.)

        Counts are cluster-wide; two nodes admitting at the same instant may each
        let one connection through (slack of one per node, documented).
        """
        if self.closing:
            return False
        limits = self.limits_for(app)
        try:
            total = await self.backplane.count_connections(None)
            per_app = await self.backplane.count_connections(app.uuid)
        except Exception:
            # The registry is unreachable (e.g. Redis down): keep serving, on local counts.
            log.warning("realtime: cluster counts unavailable, using local counts", exc_info=True)
            total = self.connection_count()
            state = self._apps.get(app.uuid)
            per_app = len(state.sessions) if state else 0
        if total >= self.limits.maxConnectionsTotal or per_app >= limits.maxConnectionsPerApp:
            return False
        self._watcher.observe("maxConnectionsTotal", total + 1, self.limits.maxConnectionsTotal)
        self._watcher.observe(
            "maxConnectionsPerApp", per_app + 1, limits.maxConnectionsPerApp, app.uuid
        )
        return True

    # -- connection life cycle -------------------------------------------------------
    async def connect(
        self, app: App, transport: Transport, claims: dict[str, Any] | None = None
    ) -> Session:
        """Register a new connection and send it ``connected``."""
        state = self.app_hub(app)
        now = self._clock()
        session = Session(
            client_id=secrets.token_urlsafe(18),
            app_uuid=app.uuid,
            transport=transport,
            now=now,
            connected_at_ms=self._wall_ms(),
            ping_interval=self.heartbeat.ping_interval,
            messages_per_second=state.limits.maxMessagesPerSecond,
        )
        if claims is not None:
            session.authenticate(claims, self._expiry_of(claims))
        first = not state.sessions
        state.sessions[session.client_id] = session
        connected: dict[str, Any] = {"type": "connected", "clientId": session.client_id}
        if claims is not None:
            connected["user"] = user_from_claims(claims)
        session.send(protocol.frame(connected))
        if first:
            await self.backplane.watch_app(app.uuid)
        await self.backplane.add_connection(app.uuid, session.client_id)
        if session.closed:  # it went away while we registered it
            await self.backplane.remove_connection(app.uuid, session.client_id)
        return session

    async def disconnect(self, session: Session) -> None:
        """Forget a connection that closed (for any reason). Idempotent."""
        state = self._apps.get(session.app_uuid)
        if state is None or state.sessions.get(session.client_id) is not session:
            session.closed = True
            return
        session.closed = True
        del state.sessions[session.client_id]
        channels = list(session.subscriptions)
        session.subscriptions.clear()
        emptied = [name for name in channels if self._remove_local(state, name, session)]
        app_uuid = session.app_uuid
        for name in channels:
            await self._forget_subscription(state, session, name, name in emptied)
        await self.backplane.remove_connection(app_uuid, session.client_id)
        if not state.sessions:
            await self.backplane.unwatch_app(app_uuid)
        per_app = await self.backplane.count_connections(app_uuid)
        self._watcher.observe(
            "maxConnectionsPerApp", per_app, state.limits.maxConnectionsPerApp, app_uuid
        )
        total = await self.backplane.count_connections(None)
        self._watcher.observe("maxConnectionsTotal", total, self.limits.maxConnectionsTotal)

    def _close(self, session: Session, code: int, reason: str | None = None) -> None:
        """Close a session from the server side; the handler reports the disconnect."""
        session.closed = True
        session.transport.close(code, reason or protocol.CLOSE_REASONS.get(code, ""))

    # -- client messages ---------------------------------------------------------------
    async def handle(self, session: Session, text: str | bytes) -> None:
        """Process one client frame; every refusal becomes an ``error`` reply."""
        if session.closed:
            return
        now = self._clock()
        try:
            message = protocol.parse(text)
        except ProtocolError as error:
            if self._count_message(session, now):
                session.send(text_frame(protocol.error_from(error)))
            return
        if isinstance(message, protocol.Pong):
            # Pongs are exempt from the rate limit and do not count as activity.
            session.pong(now, self.heartbeat)
            return
        if not self._count_message(session, now):
            return
        session.touch(now)
        try:
            if isinstance(message, protocol.Publish):
                await self._publish_from_client(session, message)
            elif isinstance(message, protocol.Subscribe):
                await self._subscribe(session, message.channel)
            elif isinstance(message, protocol.Unsubscribe):
                await self._unsubscribe(session, message.channel)
            elif isinstance(message, protocol.Ping):
                session.send(_PONG_FRAME)
            elif isinstance(message, protocol.Members):
                await self._members(session, message.channel)
            elif isinstance(message, protocol.Auth):
                await self._auth(session, message.token)
        except ProtocolError as error:
            if not session.closed:
                session.send(text_frame(protocol.error_from(error)))
        except Exception:
            # A failing backplane call (or a bug) must not cost the client its
            # connection; it is logged loudly instead.
            log.exception("realtime: failed to handle a %s message", type(message).__name__)

    def _count_message(self, session: Session, now: float) -> bool:
        """Spend a rate token; over the rate, drop and warn at most once a second."""
        if session.take_message_token(now):
            return True
        if session.should_warn_rate(now):
            session.send(
                text_frame(
                    protocol.error_payload(
                        protocol.RATE_LIMITED, "message rate limit exceeded; message dropped"
                    )
                )
            )
        return False

    def _expiry_of(self, claims: dict[str, Any]) -> float | None:
        """The token's ``exp`` on the hub's monotonic clock."""
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return None
        return self._clock() + (float(exp) - self._token_clock())

    async def _auth(self, session: Session, token: str) -> None:
        state = self._apps[session.app_uuid]
        try:
            claims = self.tokens.verify(token, state.app)
        except TokenError as error:
            raise ProtocolError(protocol.UNAUTHORIZED, str(error)) from error
        previous = session.claims
        if previous is not None and previous.get("sub") != claims.get("sub"):
            # Switching users: presence and private subscriptions were granted to the
            # old identity, so they go (as on expiry).
            await self._drop_authenticated_subscriptions(session, "reauthenticated")
        session.authenticate(claims, self._expiry_of(claims))
        session.send(protocol.frame({"type": "authenticated", "user": user_from_claims(claims)}))

    def _rule(self, state: AppHub, channel: str) -> ChannelRule:
        return state.rules.rule_for(channel)

    def _check_access(self, state: AppHub, session: Session, channel: str) -> None:
        rule = self._rule(state, channel)
        if is_presence(channel) and not session.claims:
            raise ProtocolError(
                protocol.UNAUTHORIZED, "presence channels need an authenticated client", channel
            )
        denied = check_access(rule, session.claims)
        if denied == protocol.UNAUTHORIZED:
            raise ProtocolError(denied, "this channel needs an authenticated client", channel)
        if denied is not None:
            raise ProtocolError(protocol.FORBIDDEN, "your role may not use this channel", channel)

    async def _subscribe(self, session: Session, channel: str) -> None:
        state = self._apps[session.app_uuid]
        # Every subscriber keeps the name: one shared string, not one per client.
        channel = sys.intern(channel)
        if channel in session.subscriptions:
            await self._send_subscribed(session, channel)  # idempotent
            return
        self._check_access(state, session, channel)
        limits = state.limits
        if len(session.subscriptions) >= limits.maxSubscriptionsPerClient:
            raise ProtocolError(
                protocol.SUBSCRIPTION_LIMIT,
                f"at most {limits.maxSubscriptionsPerClient} subscriptions per client",
                channel,
            )
        if channel not in state.channels:
            app_uuid = session.app_uuid
            if await self.backplane.count_subscribers(app_uuid, channel) == 0:
                used = await self.backplane.count_channels(app_uuid)
                if used >= limits.maxChannelsPerApp:
                    raise ProtocolError(
                        protocol.CHANNEL_LIMIT,
                        f"this app has reached its limit of {limits.maxChannelsPerApp} channels",
                        channel,
                    )
                self._watcher.observe(
                    "maxChannelsPerApp", used + 1, limits.maxChannelsPerApp, app_uuid
                )
            if session.closed:
                return
        # Local state first, synchronously.
        subscribers = state.channels.get(channel)
        new_local_channel = subscribers is None
        if subscribers is None:
            subscribers = state.channels[channel] = {}
        subscribers[session.client_id] = session
        session.subscriptions[channel] = None
        if new_local_channel:
            await self.backplane.subscribe_channel(session.app_uuid, channel)
        await self.backplane.add_subscription(
            session.app_uuid, channel, session.client_id, session.public_info()
        )
        joined = False
        member: dict[str, Any] | None = None
        if is_presence(channel) and session.claims:
            member = member_from_claims(session.claims)
            joined = await self.backplane.presence_join(
                session.app_uuid, channel, session.client_id, member
            )
        if session.closed or channel not in session.subscriptions:
            # Disconnected or unsubscribed meanwhile: undo what the registry got.
            if session.closed:
                await self._forget_subscription(state, session, channel, False)
            return
        await self._send_subscribed(session, channel)
        if joined and member is not None:
            await self._announce(state, channel, presence_event(channel, "join", member), session)

    async def _send_subscribed(self, session: Session, channel: str) -> None:
        reply: dict[str, Any] = {"type": "subscribed", "channel": channel}
        if is_presence(channel):
            reply["members"] = await self.backplane.presence_members(session.app_uuid, channel)
        if not session.closed:
            session.send(protocol.frame(reply))

    async def _unsubscribe(self, session: Session, channel: str, reason: str | None = None) -> None:
        state = self._apps[session.app_uuid]
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "you are not subscribed to this channel", channel
            )
        del session.subscriptions[channel]
        emptied = self._remove_local(state, channel, session)
        reply: dict[str, Any] = {"type": "unsubscribed", "channel": channel}
        if reason is not None:
            reply["reason"] = reason
        session.send(protocol.frame(reply))
        await self._forget_subscription(state, session, channel, emptied)

    def _remove_local(self, state: AppHub, channel: str, session: Session) -> bool:
        """Remove a session from a channel's local subscribers; True when it emptied."""
        subscribers = state.channels.get(channel)
        if subscribers is None or subscribers.pop(session.client_id, None) is None:
            return False
        if subscribers:
            return False
        del state.channels[channel]
        return True

    async def _forget_subscription(
        self, state: AppHub, session: Session, channel: str, emptied: bool
    ) -> None:
        """The registry side of leaving a channel (after local state changed)."""
        app_uuid = session.app_uuid
        await self.backplane.remove_subscription(app_uuid, channel, session.client_id)
        if emptied and channel not in state.channels:
            await self.backplane.unsubscribe_channel(app_uuid, channel)
            used = await self.backplane.count_channels(app_uuid)
            self._watcher.observe(
                "maxChannelsPerApp", used, state.limits.maxChannelsPerApp, app_uuid
            )
        if is_presence(channel) and session.claims:
            member = member_from_claims(session.claims)
            left = await self.backplane.presence_leave(
                app_uuid, channel, session.client_id, str(member["id"])
            )
            if left:
                await self._announce(state, channel, presence_event(channel, "leave", member))

    async def _members(self, session: Session, channel: str) -> None:
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "subscribe to the channel to list its members", channel
            )
        members = (
            await self.backplane.presence_members(session.app_uuid, channel)
            if is_presence(channel)
            else []
        )
        if not session.closed:
            session.send(
                protocol.frame({"type": "members", "channel": channel, "members": members})
            )

    async def _publish_from_client(self, session: Session, message: protocol.Publish) -> None:
        state = self._apps[session.app_uuid]
        channel = message.channel
        if not self._rule(state, channel).publish:
            raise ProtocolError(
                protocol.FORBIDDEN, "clients may not publish on this channel", channel
            )
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "subscribe to the channel before publishing", channel
            )
        payload = protocol.message_payload(
            channel, message.data, self._wall_ms(), session.client_id
        )
        frame = text_frame(payload)
        sender = session.client_id
        subscribers = state.channels.get(channel)
        if subscribers:
            for client_id, subscriber in tuple(subscribers.items()):
                if client_id != sender:
                    subscriber.send(frame)
        await self.backplane.publish_channel(session.app_uuid, channel, payload)

    async def _announce(
        self,
        state: AppHub,
        channel: str,
        event: dict[str, Any],
        exclude: Session | None = None,
    ) -> None:
        """Send a presence event to the channel's subscribers here and on other nodes."""
        payload = protocol.encode(event)
        frame = text_frame(payload)
        for subscriber in tuple(state.channels.get(channel, {}).values()):
            if subscriber is not exclude:
                subscriber.send(frame)
        await self.backplane.publish_channel(state.app.uuid, channel, payload)

    async def _drop_authenticated_subscriptions(self, session: Session, reason: str) -> None:
        """Leave every channel that needed the (old) token: private, presence, role rules."""
        state = self._apps[session.app_uuid]
        for channel in list(session.subscriptions):
            if is_presence(channel) or self._rule(state, channel).needs_auth:
                await self._unsubscribe(session, channel, reason)

    async def expire_token(self, session: Session) -> None:
        """The token ran out: drop its subscriptions, stay open as anonymous."""
        if session.closed or session.claims is None:
            return
        session.token_expires_at = None  # the sweep must not fire twice
        await self._drop_authenticated_subscriptions(session, "token_expired")
        session.drop_auth()
        if not session.closed:
            session.send(text_frame(protocol.error_payload(protocol.UNAUTHORIZED, "token expired")))

    # -- server API (scoped to one app) ----------------------------------------------
    def _payload_within_limit(self, app: App, build: Callable[[], bytes]) -> bytes:
        try:
            payload = build()
        except (TypeError, ValueError) as error:
            raise HubError("data must be JSON-serialisable") from error
        limit = self.limits_for(app).max_message_bytes
        if len(payload) > limit:
            raise HubError(f"message is {len(payload)} bytes, over the {limit}-byte limit")
        return payload

    async def broadcast(self, app: App, channel: str, data: Any) -> None:
        """Send ``data`` to every subscriber of ``channel`` in this app, cluster-wide."""
        if not isinstance(channel, str):
            raise HubError("channel must be a string")
        if not is_valid_channel_name(channel):
            raise HubError("invalid channel name")
        payload = self._payload_within_limit(
            app, lambda: protocol.message_payload(channel, data, self._wall_ms())
        )
        self.deliver_channel(app.uuid, channel, payload)
        await self.backplane.publish_channel(app.uuid, channel, payload)

    async def broadcast_all(self, app: App, data: Any) -> None:
        """Send ``data`` to every client of the app (no channel), cluster-wide."""
        payload = self._payload_within_limit(
            app, lambda: protocol.app_message_payload(data, self._wall_ms())
        )
        self.deliver_app(app.uuid, payload)
        await self.backplane.publish_app(app.uuid, payload)

    async def subscribers(self, app: App, channel: str) -> list[dict[str, Any]]:
        if not isinstance(channel, str) or not is_valid_channel_name(channel):
            raise HubError("invalid channel name")
        return await self.backplane.subscribers(app.uuid, channel)

    async def count(self, app: App, channel: str | None = None) -> int:
        if channel is None:
            return await self.backplane.count_connections(app.uuid)
        if not isinstance(channel, str) or not is_valid_channel_name(channel):
            raise HubError("invalid channel name")
        return await self.backplane.count_subscribers(app.uuid, channel)

    async def kick(self, app: App, client_id: str, reason: str = "") -> bool:
        """Kick a client of this app, wherever it is connected; False when unknown."""
        if not isinstance(client_id, str) or not client_id:
            raise HubError("clientId must be a non-empty string")
        if not isinstance(reason, str):
            raise HubError("reason must be a string")
        reason = reason[:MAX_KICK_REASON]
        if self._kick_here(app.uuid, client_id, reason):
            return True
        return await self.backplane.send_kick(app.uuid, client_id, reason)

    def _kick_here(self, app_uuid: str, client_id: str, reason: str) -> bool:
        state = self._apps.get(app_uuid)
        session = state.sessions.get(client_id) if state else None
        if session is None or session.closed:
            return False
        session.send(protocol.frame({"type": "kicked", "reason": reason}))
        self._close(session, protocol.CLOSE_KICKED, "kicked")
        return True

    # -- BackplaneHandler --------------------------------------------------------------
    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        """Fan ``payload`` out to local subscribers: one frame, written to each."""
        state = self._apps.get(app_uuid)
        if state is None:
            return
        subscribers = state.channels.get(channel)
        if not subscribers:
            return
        frame = text_frame(payload)
        for session in tuple(subscribers.values()):
            session.send(frame)

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        state = self._apps.get(app_uuid)
        if state is None or not state.sessions:
            return
        frame = text_frame(payload)
        for session in tuple(state.sessions.values()):
            session.send(frame)

    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None:
        self._kick_here(app_uuid, client_id, str(reason)[:MAX_KICK_REASON])

    def presence_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        event = presence_event(channel, "leave", member)
        state = self._apps.get(app_uuid)
        if state is None:
            # This node swept a dead one but has no clients of the app (e.g. a
            # worker that just replaced the dead one): no one here listens, but
            # the subscribers on other nodes must still hear the leave.
            self.spawn(self.backplane.publish_channel(app_uuid, channel, protocol.encode(event)))
            return
        self.spawn(self._announce(state, channel, event))

    # -- heartbeat, shutdown -------------------------------------------------------------
    def sessions(self) -> Iterable[Session]:
        for state in tuple(self._apps.values()):
            yield from tuple(state.sessions.values())

    def sweep(self) -> None:
        """One pass of the shared heartbeat timer over every local session."""
        now = self._clock()
        policy = self.heartbeat
        for session in self.sessions():
            if session.closed:
                continue
            due = session.due(now, policy)
            if due is Due.NOTHING:
                continue
            if due is Due.PING:
                session.ping_sent(now)
                session.send(_PING_FRAME)
            elif due is Due.PONG_TIMEOUT:
                self._close(session, protocol.CLOSE_PONG_TIMEOUT)
            elif due is Due.IDLE_TIMEOUT:
                self._close(session, protocol.CLOSE_IDLE_TIMEOUT)
            elif due is Due.TOKEN_EXPIRED:
                self.spawn(self.expire_token(session))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a hub coroutine in the background; failures are logged, never lost."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("realtime hub task failed", exc_info=task.exception())

    def session(self, app_uuid: str, client_id: str) -> Session | None:
        """A local session by id (diagnostics and tests)."""
        state = self._apps.get(app_uuid)
        return state.sessions.get(client_id) if state else None

    def connection_count(self) -> int:
        """Local connections (all apps)."""
        return sum(len(state.sessions) for state in self._apps.values())

    async def shutdown(self, grace_seconds: float, poll_seconds: float = 0.02) -> None:
        """Graceful stop: ``server_restart`` to all, wait up to ``grace_seconds`` for
        clients to leave, close the rest with 4200, then drop what is still open."""
        self.closing = True
        for session in self.sessions():
            if not session.closed:
                session.send(_RESTART_FRAME)
        deadline = self._clock() + grace_seconds
        while self.connection_count() and self._clock() < deadline:
            await asyncio.sleep(poll_seconds)
        for session in self.sessions():
            if not session.closed:
                self._close(session, protocol.CLOSE_SERVER_RESTART)
        # Give closing handshakes a moment, then cut whatever is left.
        deadline = self._clock() + min(1.0, max(grace_seconds, poll_seconds))
        while self.connection_count() and self._clock() < deadline:
            await asyncio.sleep(poll_seconds)
        for session in self.sessions():
            session.transport.abort()
        # Let the handlers report those last closes, so the registry is cleaned
        # before the backplane stops.
        deadline = self._clock() + 0.5
        while self.connection_count() and self._clock() < deadline:
            await asyncio.sleep(poll_seconds)
        await self.drain_tasks()

    async def drain_tasks(self) -> None:
        """Wait for every background hub task (token expiry, presence leaves)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
