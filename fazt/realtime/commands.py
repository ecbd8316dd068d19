"""One connection's requests: its connect, every frame it sends, its disconnect.

The handler calls ``connect`` after the upgrade, ``handle`` for every frame and
``disconnect`` once the connection closed. Every client request is answered
here or refused with an ``error`` frame; a refused request never closes the
connection. Whether a subscribe is allowed is decided in one place,
``_may_subscribe`` (rules, roles, presence, the app's ``onSubscribe`` hook, the
subscription and channel limits); what a subscribe or unsubscribe then does is
``membership``'s job. A client message on a channel with an ``onPublish`` hook
waits for the hook's verdict in its connection's lane (``publish_lanes``), and
only a message the hook let through is published (and, on a history channel,
numbered). A ``history`` request is answered here from the history store.

Whatever raises while a connection opens, runs or closes, what it holds is
released (``release.run_every``: one failed step never skips the next), and
the error is logged once for the connection (``release.note_failure``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenError, TokenService
from fazt.metrics.realtime import CLIENT, REALTIME
from fazt.realtime import protocol
from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import HistoryStore, HistoryUnavailable
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.channels import access_refusal, is_presence
from fazt.realtime.clocks import Clocks
from fazt.realtime.hook_verdicts import Verdict
from fazt.realtime.hooks import Hooks
from fazt.realtime.hub import AppState, Hub
from fazt.realtime.limits import WARNING_RATIO, ThresholdWatcher
from fazt.realtime.membership import Membership
from fazt.realtime.presence import user_from_claims
from fazt.realtime.protocol import ProtocolError
from fazt.realtime.publish_lanes import MAX_PENDING_PER_CONNECTION, PublishLanes
from fazt.realtime.release import note_failure, run_every
from fazt.realtime.session import HeartbeatPolicy, Session, Transport, new_client_id
from fazt.realtime.tasks import Tasks

log = logging.getLogger("fazt.realtime")

# The per-client limits this module watches (limits.ThresholdWatcher).
RATE = "maxMessagesPerSecond"
SIZE = "maxMessageSizeKB"
SUBSCRIPTIONS = "maxSubscriptionsPerClient"
CHANNELS_CREATED = "maxChannelsCreatedPerClient"

#: The text of an access refusal (``channels.access_refusal``), by code.
_ACCESS_REFUSED = {
    protocol.UNAUTHORIZED: "this channel needs an authenticated client",
    protocol.FORBIDDEN: "your role may not use this channel",
}


class Commands:
    """Runs the requests of this node's connections against the hub and the backplane."""

    def __init__(
        self,
        hub: Hub,
        membership: Membership,
        bus: Bus,
        registry: Registry,
        history: HistoryStore,
        tokens: TokenService,
        heartbeat: HeartbeatPolicy,
        watcher: ThresholdWatcher,
        clocks: Clocks,
        hooks: Hooks,
        tasks: Tasks,
    ) -> None:
        self._hub = hub
        self._membership = membership
        self._bus = bus
        self._registry = registry
        self._history = history
        self._tokens = tokens
        self._heartbeat = heartbeat
        self._watcher = watcher
        self._clocks = clocks
        self._hooks = hooks
        self._lanes: PublishLanes[Verdict] = PublishLanes(tasks)

    # -- connect and disconnect ---------------------------------------------------------
    async def connect(
        self, app: App, transport: Transport, claims: dict[str, Any] | None = None
    ) -> Session:
        """Register a new connection, then send it ``connected``.

        ``connected`` goes out only once the registry counts the connection and
        this node receives the app's messages, so a client that saw it is
        already counted by every node's admission and reached by ``broadcastAll``.
        It is always the connection's first frame: while it is being registered
        the session is in the hub (a disconnect finds it) but takes no frames, so
        an app-wide message fanned out meanwhile is not delivered to it.

        Never raises: when a step fails, the connection is closed with 1011,
        released, and the error logged; the (closed) session is returned.
        """
        state = self._hub.app_state(app)
        session = Session(
            client_id=new_client_id(),
            app_uuid=app.uuid,
            transport=transport,
            now=self._clocks.monotonic(),
            connected_at_ms=self._clocks.wall_ms(),
            ping_interval=self._heartbeat.ping_interval,
            messages_per_second=state.limits.maxMessagesPerSecond,
        )
        if claims is not None:
            session.authenticate(claims, self._clocks.token_deadline(claims.get("exp")))
        session.send = _not_connected_yet
        first = self._hub.add_session(state, session)
        try:
            if first:
                await self._bus.watch_app(app.uuid)
            await self._registry.add_connection(app.uuid, session.client_id)
            if claims is not None:
                await self._registry.set_connection_user(
                    app.uuid, session.client_id, str(claims["sub"])
                )
            if session.closed:  # it went away while we registered it
                await self._registry.remove_connection(app.uuid, session.client_id)
                return session
            user = user_from_claims(claims) if claims is not None else None
            session.send = transport.send_frame
            session.send(protocol.connected_frame(session.client_id, user))
        except Exception:
            note_failure(session, "opening the connection")
            session.close(
                protocol.CLOSE_INTERNAL_ERROR, protocol.close_reason(protocol.CLOSE_INTERNAL_ERROR)
            )
            await self.disconnect(session)
        return session

    async def disconnect(self, session: Session) -> None:
        """Forget a connection that closed (for any reason). Idempotent; never raises.

        Its subscriptions, presence entries, registration and counts are all
        released, each step even when an earlier one failed.
        """
        session.closed = True
        self._watcher.forget_client(session.client_id)
        state = self._hub.remove_session(session)
        if state is None:
            return
        app_uuid = session.app_uuid

        async def unwatch() -> None:
            if not state.sessions:
                await self._bus.unwatch_app(app_uuid)

        async def observe() -> None:
            per_app = await self._registry.count_connections(app_uuid)
            self._watcher.observe(
                "maxConnectionsPerApp", per_app, state.limits.maxConnectionsPerApp, app_uuid
            )
            total = await self._registry.count_connections(None)
            self._watcher.observe(
                "maxConnectionsTotal", total, self._hub.limits.maxConnectionsTotal
            )

        try:
            await run_every(
                (
                    lambda: self._membership.leave_all(state, session),
                    lambda: self._registry.remove_connection(app_uuid, session.client_id),
                    unwatch,
                    observe,
                )
            )
        except Exception:
            note_failure(session, "closing the connection")

    def closed(self, session: Session, code: int) -> None:
        """The connection ended with ``code``: counted; 1009 is a message over the size
        limit, refused by the WebSocket layer before it reached ``handle``."""
        REALTIME.disconnected(session.app_uuid, protocol.known_close_code(code))
        if code == protocol.CLOSE_MESSAGE_TOO_BIG:
            state = self._hub.state_of(session.app_uuid)
            limits = state.limits if state is not None else self._hub.limits
            limit = limits.max_message_bytes
            self._watcher.refused(SIZE, limit, limit, session.app_uuid, session.client_id)

    # -- client frames -------------------------------------------------------------------
    async def handle(self, session: Session, text: str | bytes) -> None:
        """Process one client frame; every refusal becomes an ``error`` reply."""
        if session.closed:
            return
        now = self._clocks.monotonic()
        self._observe_size(session, text)
        try:
            message = protocol.parse(text)
        except ProtocolError as error:
            if self._count_message(session, now):
                self._send_error(session, error)
            return
        if isinstance(message, protocol.Pong):
            # Pongs are exempt from the rate limit and do not count as activity.
            session.pong(now, self._heartbeat)
            return
        if not self._count_message(session, now):
            return
        session.touch(now)
        try:
            if isinstance(message, protocol.Publish):
                await self._publish(session, message)
            elif isinstance(message, protocol.Subscribe):
                await self._subscribe(session, message)
            elif isinstance(message, protocol.Unsubscribe):
                await self._membership.leave(self._state(session), session, message.channel)
            elif isinstance(message, protocol.Ping):
                session.send(protocol.PONG_FRAME)
            elif isinstance(message, protocol.Members):
                await self._members(session, message.channel)
            elif isinstance(message, protocol.History):
                await self._history_request(session, message)
            elif isinstance(message, protocol.Auth):
                await self._auth(session, message.token)
        except ProtocolError as error:
            if not session.closed:
                self._send_error(session, error)
        except Exception:
            # A failing backplane call (or a bug) must not cost the client its
            # connection; it is logged, once for the connection.
            note_failure(session, f"handling a {type(message).__name__} message")

    def _state(self, session: Session) -> AppState:
        state = self._hub.state_of(session.app_uuid)
        if state is None:
            raise RuntimeError(f"session {session.client_id} has no app state")
        return state

    def _send_error(self, session: Session, error: ProtocolError) -> None:
        """Answer a refused request with its ``error`` frame (counted per code)."""
        REALTIME.error_sent(session.app_uuid, error.code)
        session.send(protocol.error_frame_from(error))

    def _count_message(self, session: Session, now: float) -> bool:
        """Spend a rate token; over the rate, drop and warn at most once a second."""
        limit = session.rate_capacity
        if session.take_message_token(now):
            used = session.rate_used()
            self._watcher.observe(RATE, used, limit, session.app_uuid, session.client_id)
            return True
        self._watcher.refused(RATE, limit, limit, session.app_uuid, session.client_id)
        if session.should_warn_rate(now):
            self._send_error(
                session,
                ProtocolError(
                    protocol.RATE_LIMITED, "message rate limit exceeded; message dropped"
                ),
            )
        return False

    def _observe_size(self, session: Session, text: str | bytes) -> None:
        """Warn when a client's message reaches 80 % of the size limit (the handler
        closes larger ones with 1009 before they get here)."""
        state = self._hub.state_of(session.app_uuid)
        limits = state.limits if state is not None else self._hub.limits
        limit = limits.max_message_bytes
        # A str of n characters holds n to 4n UTF-8 bytes: encode only when it may matter.
        if len(text) * 4 < WARNING_RATIO * limit:
            return
        size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        self._watcher.observe(SIZE, size, limit, session.app_uuid, session.client_id)

    async def _auth(self, session: Session, token: str) -> None:
        state = self._state(session)
        try:
            claims = self._tokens.verify(token, state.app)
        except TokenError as error:
            raise ProtocolError(protocol.UNAUTHORIZED, str(error)) from error
        previous = session.claims
        membership = self._membership
        if previous is not None and previous.get("sub") != claims.get("sub"):
            # Switching users: what the old identity was granted goes (as on expiry).
            await membership.leave_disallowed(state, session, None, "reauthenticated")
        # Same user or not, every subscription must still be allowed by the new claims
        # (a role may be gone).
        await membership.leave_disallowed(state, session, claims, "reauthenticated")
        session.authenticate(claims, self._clocks.token_deadline(claims.get("exp")))
        await self._registry.set_connection_user(
            session.app_uuid, session.client_id, str(claims["sub"])
        )
        session.send(protocol.authenticated_frame(user_from_claims(claims)))

    async def _subscribe(self, session: Session, message: protocol.Subscribe) -> None:
        state = self._state(session)
        # Every subscriber keeps the name: one shared string, not one per client.
        channel = sys.intern(message.channel)
        since = message.since
        if channel in session.subscriptions:
            # Idempotent, but access is checked again: a subscription that is no
            # longer allowed (the app's rules changed) goes, with the refusal.
            refusal = _access_refusal(state, session, channel)
            if refusal is not None:
                await self._membership.leave(state, session, channel, refusal.code)
                raise refusal
            # The subscriber already has everything from its position on.
            feed = state.feeds.get(channel)
            position = feed.position_of(session.client_id) if feed is not None else None
            await self._membership.send_subscribed(
                session,
                channel,
                position=position,
                recovered=None if since is None else since == position,
            )
            return
        await self._may_subscribe(state, session, channel)
        if session.closed:
            return
        # The registry's own answer: this subscription created the channel.
        created = await self._membership.join(state, session, channel, since)
        session.record_subscribe(channel, created)
        subscribed, limit = len(session.subscriptions), state.limits.maxSubscriptionsPerClient
        self._watcher.observe(SUBSCRIPTIONS, subscribed, limit, state.app.uuid, session.client_id)

    async def _may_subscribe(self, state: AppState, session: Session, channel: str) -> None:
        """The one place a subscribe is decided: raises ``ProtocolError`` to refuse it.

        A subscribe that would create a channel (nobody in the cluster holds it
        yet) counts against the app's ``maxChannelsPerApp`` and the connection's
        ``maxChannelsCreatedPerClient``.
        """
        refusal = _access_refusal(state, session, channel)
        if refusal is not None:
            raise refusal
        rule = state.rules.rule_for(channel)
        limits = state.limits
        if len(session.subscriptions) >= limits.maxSubscriptionsPerClient:
            subscribed, limit = len(session.subscriptions), limits.maxSubscriptionsPerClient
            self._watcher.refused(
                SUBSCRIPTIONS, subscribed, limit, state.app.uuid, session.client_id
            )
            raise ProtocolError(
                protocol.SUBSCRIPTION_LIMIT,
                f"at most {limits.maxSubscriptionsPerClient} subscriptions per client",
                channel,
            )
        if "subscribe" in rule.hooks:
            verdict = await self._hooks.allow_subscribe(state.app, session, channel)
            if not verdict.allowed:
                raise ProtocolError(protocol.FORBIDDEN, verdict.reason, channel)
        if channel in state.channels:
            return  # the channel already exists here: no new channel for the app
        app_uuid = session.app_uuid
        if await self._registry.count_subscribers(app_uuid, channel) != 0:
            return
        budget = limits.maxChannelsCreatedPerClient
        created = session.channels_created()
        if created >= budget:
            self._watcher.refused(CHANNELS_CREATED, created, budget, app_uuid, session.client_id)
            raise ProtocolError(
                protocol.CHANNEL_LIMIT,
                f"at most {budget} new channels per client: leave one you created first",
                channel,
            )
        used = await self._registry.count_channels(app_uuid)
        if used >= limits.maxChannelsPerApp:
            self._watcher.refused("maxChannelsPerApp", used, limits.maxChannelsPerApp, app_uuid)
            raise ProtocolError(
                protocol.CHANNEL_LIMIT,
                f"this app has reached its limit of {limits.maxChannelsPerApp} channels",
                channel,
            )
        self._watcher.observe("maxChannelsPerApp", used + 1, limits.maxChannelsPerApp, app_uuid)
        self._watcher.observe(CHANNELS_CREATED, created + 1, budget, app_uuid, session.client_id)

    async def _members(self, session: Session, channel: str) -> None:
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "subscribe to the channel to list its members", channel
            )
        members = (
            await self._registry.presence_members(session.app_uuid, channel)
            if is_presence(channel)
            else []
        )
        if not session.closed:
            session.send(protocol.members_frame(channel, members))

    async def _history_request(self, session: Session, message: protocol.History) -> None:
        """``history``: subscribers only, on a channel whose rule keeps history."""
        channel = message.channel
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "subscribe to the channel to read its history", channel
            )
        state = self._state(session)
        policy = state.history_policy(channel)
        if policy is None:
            raise ProtocolError(protocol.HISTORY_DISABLED, "this channel keeps no history", channel)
        try:
            read = await self._history.read(
                session.app_uuid, channel, policy, since=message.since, limit=message.limit
            )
        except HistoryUnavailable as error:
            raise ProtocolError(
                protocol.HISTORY_UNAVAILABLE, "history is unavailable right now", channel
            ) from error
        if not read.complete:
            raise ProtocolError(
                protocol.HISTORY_UNRECOVERABLE,
                "the publications after this position are gone (or the epoch changed)",
                channel,
            )
        if not session.closed:
            session.send(protocol.history_frame(channel, read.publications, read.position))

    async def _publish(self, session: Session, message: protocol.Publish) -> None:
        """A client ``message``: allowed by a ``publish: true`` rule, to subscribers only,
        never echoed to its sender."""
        state = self._state(session)
        channel = message.channel
        rule = state.rules.rule_for(channel)
        if not rule.publish:
            raise ProtocolError(
                protocol.FORBIDDEN, "clients may not publish on this channel", channel
            )
        if channel not in session.subscriptions:
            raise ProtocolError(
                protocol.NOT_SUBSCRIBED, "subscribe to the channel before publishing", channel
            )
        if "publish" in rule.hooks:
            self._publish_after_hook(state, session, channel, message.data)
            return
        head = protocol.publication_head(message.data, self._clocks.wall_ms(), session.client_id)
        try:
            await self._hub.publish(state, channel, head, exclude=session.client_id)
        except HistoryUnavailable as error:
            raise ProtocolError(*_history_unavailable(channel)) from error
        REALTIME.published(state.app.uuid, CLIENT)

    def _publish_after_hook(
        self, state: AppState, session: Session, channel: str, data: Any
    ) -> None:
        """Start ``onPublish`` for a client message; the message goes out (or is
        refused with ``rejected``) once its hook and every earlier message of this
        connection on the channel are done. Its timestamp is its arrival.

        The hook runs before the message is published, so on a history channel a
        rejected message never takes an offset, and the lane publishes one
        message at a time: its messages get their offsets in the order they
        were sent.
        """
        connection = (session.app_uuid, session.client_id)
        if self._lanes.pending(connection) >= MAX_PENDING_PER_CONNECTION:
            raise ProtocolError(
                protocol.REJECTED,
                f"at most {MAX_PENDING_PER_CONNECTION} messages may wait for the app's "
                "onPublish hook; message dropped",
                channel,
            )
        timestamp = self._clocks.wall_ms()
        prefix = protocol.message_prefix(channel)
        limit = state.limits.max_message_bytes

        async def act(verdict: Verdict) -> None:
            if verdict.allowed:
                head = protocol.publication_head(verdict.data, timestamp, session.client_id)
                if len(protocol.unnumbered_message(prefix, head)) <= limit:
                    try:
                        await self._hub.publish(state, channel, head, exclude=session.client_id)
                    except HistoryUnavailable:
                        if not session.closed:
                            session.send(protocol.error_frame(*_history_unavailable(channel)))
                    else:
                        REALTIME.published(state.app.uuid, CLIENT)
                    return
                log.warning(
                    "app %s: hook onPublish returned data over maxMessageSizeKB on %s",
                    state.app.slug,
                    channel,
                )
                verdict = Verdict(False, "the message the app made of yours is too big to send")
            if not session.closed:
                session.send(protocol.error_frame(protocol.REJECTED, verdict.reason, channel))

        verdict = self._hooks.vet_publish(state.app, session, channel, data)
        self._lanes.add(connection, channel, verdict, act)


def _not_connected_yet(frame: bytes) -> None:
    """``Session.send`` until ``connected`` went out: frames before it are dropped."""


def _access_refusal(state: AppState, session: Session, channel: str) -> ProtocolError | None:
    """The error that refuses ``session`` the channel (``channels.access_refusal``), or None."""
    code = access_refusal(state.rules, channel, session.claims)
    if code is None:
        return None
    text = (
        "presence channels need an authenticated client"
        if is_presence(channel) and not session.claims
        else _ACCESS_REFUSED[code]
    )
    return ProtocolError(code, text, channel)


def _history_unavailable(channel: str) -> tuple[str, str, str]:
    """The ``error`` of a client message the history store could not take."""
    return (
        protocol.HISTORY_UNAVAILABLE,
        "history is unavailable right now; the message was not sent",
        channel,
    )
