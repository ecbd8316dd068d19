"""The server API: ``RealtimeAPI`` for Python and the ``fazt.realtime`` JS namespace.

Both are thin, app-scoped views of the realtime core: an API object or a host
call can only ever name its own app's channels and clients. Arguments are
checked here, once, whichever side they come from: the JS namespace only
picks the arguments out of the call and turns a refusal into a rejected
Promise that names the function (``fazt.realtime.broadcast: channel must be a
string``).

This module is the one place in ``fazt.realtime`` that imports the kernel's
host-call contract (``HostCallContext``, ``HostCallError``, ``HostFunction``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fazt.contracts.host_calls import (
    Effect,
    HostCallContext,
    HostCallError,
    HostFunction,
    PostableHostFunction,
    Posted,
)
from fazt.contracts.strict_json import StrictJsonError, check_strict_json
from fazt.kernel.app import App
from fazt.metrics.events import EVENTS, KICK
from fazt.metrics.realtime import REALTIME, SERVER
from fazt.realtime import protocol
from fazt.realtime.backplane.history import HistoryUnavailable, StreamPosition
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.channels import is_valid_channel_name
from fazt.realtime.hub import AppState, Hub
from fazt.realtime.limits import Limits
from fazt.realtime.session import is_client_id

log = logging.getLogger("fazt.realtime")

#: The functions of a plugin's JS namespace, by name.
JsNamespace = dict[str, HostFunction]


class RealtimeAPIError(Exception):
    """A server-API call was refused (bad argument, data over the size limit).

    ``str(error)`` is a sentence safe to show the caller.
    """


def _channel(value: object) -> str:
    if value is None:
        raise RealtimeAPIError("channel is required")
    if not isinstance(value, str):
        raise RealtimeAPIError("channel must be a string")
    if not is_valid_channel_name(value):
        raise RealtimeAPIError("invalid channel name")
    return value


def _client_id(value: object) -> str:
    if value is None:
        raise RealtimeAPIError("clientId is required")
    if not isinstance(value, str):
        raise RealtimeAPIError("clientId must be a string")
    if not value:
        raise RealtimeAPIError("clientId must be a non-empty string")
    return value


def _user_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise RealtimeAPIError("user must be a non-empty string (the user's token sub)")
    return value


def _reason(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RealtimeAPIError("reason must be a string")
    _strict("reason", value)
    return value[: protocol.MAX_KICK_REASON]


def _strict(name: str, value: object) -> None:
    """Refuse what strict UTF-8 JSON cannot carry (lone surrogates, NaN, infinities)."""
    try:
        check_strict_json(value, path=name)
    except StrictJsonError as error:
        raise RealtimeAPIError(f"{name} must be strict JSON: {error}") from error


def _limit(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RealtimeAPIError("limit must be a positive integer")
    return value


def _since(value: object) -> StreamPosition | None:
    if value is None or isinstance(value, StreamPosition):
        return value
    if not isinstance(value, Mapping):
        raise RealtimeAPIError("since must be an object {offset, epoch}")
    offset, epoch = value.get("offset"), value.get("epoch")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise RealtimeAPIError("since.offset must be a non-negative integer")
    if not isinstance(epoch, str) or not epoch:
        raise RealtimeAPIError("since.epoch must be a non-empty string")
    return StreamPosition(offset, epoch)


def _position(position: StreamPosition) -> dict[str, Any]:
    return {"offset": position.offset, "epoch": position.epoch}


class RealtimeAPI:
    """``fazt.realtime`` for one app, in Python. Every method raises
    ``RealtimeAPIError`` (a clear sentence) for bad arguments or data over the size
    limit."""

    def __init__(
        self, hub: Hub, backplane: Backplane, app: App, wall_ms: Callable[[], int]
    ) -> None:
        self._hub = hub
        self._backplane = backplane
        self._wall_ms = wall_ms
        self.app = app

    def _within_limit(
        self,
        data: Any,
        build: Callable[[], bytes],
        size: Callable[[bytes], int] = len,
        limits: Limits | None = None,
    ) -> bytes:
        _strict("data", data)
        try:
            payload = build()
        except (TypeError, ValueError) as error:
            # What the strict check lets through but JSON still refuses (an integer
            # longer than Python converts to text).
            raise RealtimeAPIError("data must be JSON-serialisable") from error
        limit = (limits or self._hub.limits_for(self.app)).max_message_bytes
        length = size(payload)
        if length > limit:
            raise RealtimeAPIError(f"message is {length} bytes, over the {limit}-byte limit")
        return payload

    async def broadcast(self, channel: str, data: Any) -> dict[str, Any] | None:
        """Send ``data`` to every subscriber of ``channel`` in this app, cluster-wide.

        On a history channel, the publication's ``{"offset", "epoch"}``; else None.
        """
        name = _channel(channel)
        head = self._publication_head(name, data)
        try:
            position = await self._hub.publish(self._hub.app_state(self.app), name, head)
        except HistoryUnavailable as error:
            raise RealtimeAPIError(
                "history is unavailable right now; the message was not sent"
            ) from error
        REALTIME.published(self.app.uuid, SERVER)
        return None if position is None else _position(position)

    def post_broadcast(self, channel: object, data: Any) -> Effect | None:
        """``broadcast`` settled on a JS worker thread: the arguments checked there (a
        refusal raises ``RealtimeAPIError``), and the effect that publishes the message
        on the IOLoop. None when only the IOLoop can do it: on a channel that keeps
        history (the caller gets the publication's position), or before the app has
        state on this node (the IOLoop makes it).

        Reads only what stays put while the app is loaded (its rules and limits).
        """
        name = _channel(channel)
        state = self._loaded_state()
        if state is None or state.history_policy(name) is not None:
            return None
        head = self._publication_head(name, data, state.limits)
        return lambda: self._publish_posted(name, head)

    def _loaded_state(self) -> AppState | None:
        """The app's realtime state on this node, if it exists for this load of the app
        (read-only: safe from a JS worker thread)."""
        state = self._hub.state_of(self.app.uuid)
        return state if state is not None and state.app is self.app else None

    def _publication_head(self, channel: str, data: Any, limits: Limits | None = None) -> bytes:
        """The publication head of ``data`` on ``channel``, its message within the limit."""
        prefix = protocol.message_prefix(channel)
        return self._within_limit(
            data,
            lambda: protocol.publication_head(data, self._wall_ms()),
            lambda head: len(protocol.unnumbered_message(prefix, head)),
            limits,
        )

    def _app_payload(self, data: Any, limits: Limits | None = None) -> bytes:
        """The ``broadcastAll`` message of ``data``, within the limit."""
        return self._within_limit(
            data, lambda: protocol.app_message_payload(data, self._wall_ms()), limits=limits
        )

    async def _publish_posted(self, channel: str, head: bytes) -> None:
        try:
            await self._hub.publish(self._hub.app_state(self.app), channel, head)
        except HistoryUnavailable:
            # The app was reloaded with history on this channel since the call.
            log.warning(
                "app %s: a broadcast on %s was dropped: history is unavailable",
                self.app.slug,
                channel,
            )
            return
        REALTIME.published(self.app.uuid, SERVER)

    def post_broadcast_all(self, data: Any) -> Effect | None:
        """``broadcastAll`` settled on a JS worker thread (see ``post_broadcast``)."""
        state = self._loaded_state()
        if state is None:
            return None
        payload = self._app_payload(data, state.limits)
        return lambda: self._publish_app_posted(payload)

    async def _publish_app_posted(self, payload: bytes) -> None:
        await self._hub.publish_app(self._hub.app_state(self.app), payload)
        REALTIME.published(self.app.uuid, SERVER)

    async def history(
        self, channel: str, *, limit: int | None = None, since: object = None
    ) -> dict[str, Any]:
        """``{"publications": [{"data","offset","timestamp"[,"from"]}], "offset", "epoch"}``:
        the newest ``limit`` publications (default and most: the rule's ``size``),
        or those after ``since`` (``{"offset", "epoch"}``), oldest first."""
        name = _channel(channel)
        count, position = _limit(limit), _since(since)
        if count is not None and position is not None:
            raise RealtimeAPIError("give limit or since, not both")
        state = self._hub.app_state(self.app)
        policy = state.history_policy(name)
        if policy is None:
            raise RealtimeAPIError("channel has no history (its app.json rule has none)")
        try:
            read = await self._backplane.history.read(
                self.app.uuid, name, policy, since=position, limit=count
            )
        except HistoryUnavailable as error:
            raise RealtimeAPIError("history is unavailable right now") from error
        if not read.complete:
            raise RealtimeAPIError(
                "since is not recoverable: those publications are gone or the epoch changed"
            )
        return {
            "publications": [json.loads(publication) for publication in read.publications],
            **_position(read.position),
        }

    async def broadcast_all(self, data: Any) -> None:
        """Send ``data`` to every client of the app (no channel), cluster-wide."""
        await self._publish_app_posted(self._app_payload(data))

    async def subscribers(self, channel: str) -> list[dict[str, Any]]:
        """``[{"clientId", "connectedAt", "metadata"}]`` of the channel, cluster-wide."""
        return await self._backplane.registry.subscribers(self.app.uuid, _channel(channel))

    async def count(self, channel: str | None = None) -> int:
        """Subscribers of ``channel``, or connections of the app without one."""
        registry = self._backplane.registry
        if channel is None:
            return await registry.count_connections(self.app.uuid)
        return await registry.count_subscribers(self.app.uuid, _channel(channel))

    async def kick(self, client_id: str, reason: str | None = "") -> bool:
        """Kick a client of this app, wherever it is connected; False when unknown."""
        client = _client_id(client_id)
        text = _reason(reason)
        if not is_client_id(client):
            return False  # no client ever has such an id: nothing to look up
        kicked = await self._kick_client(client, text)
        if kicked:
            EVENTS.record(KICK, self.app.uuid, f"kicked client {client}", {"clientId": client})
        return kicked

    async def _kick_client(self, client: str, text: str) -> bool:
        app_uuid = self.app.uuid
        if self._hub.kick(app_uuid, client, text):
            return True
        node_id = await self._backplane.registry.connection_node(app_uuid, client)
        if node_id is None:
            return False
        return await self._backplane.bus.send_kick(app_uuid, node_id, client, text)

    async def kick_user(self, user_id: str, reason: str | None = "") -> int:
        """Kick every connection of the app authenticated as ``user_id`` (a token's
        ``sub``), on every node; returns how many were closed (4003)."""
        user = _user_id(user_id)
        text = _reason(reason)
        app_uuid = self.app.uuid
        # This node's own sessions are authoritative here; the registry names the others.
        local = [
            session.client_id
            for session in self._hub.sessions()
            if session.app_uuid == app_uuid
            and session.claims is not None
            and session.claims.get("sub") == user
        ]
        kicked = sum(self._hub.kick(app_uuid, client, text) for client in local)
        node_id = self._backplane.node_id
        for client, owner in await self._backplane.registry.user_connections(app_uuid, user):
            if owner != node_id:
                kicked += await self._backplane.bus.send_kick(app_uuid, owner, client, text)
        if kicked:
            EVENTS.record(
                KICK, app_uuid, f"kicked user {user} ({kicked} connections)", {"user": user}
            )
        return kicked

    async def kick_target(self, target: object, reason: str | None = "") -> int:
        """``{"user": id}`` or ``{"clientId": id}``: the connections kicked (admin, JS)."""
        if not isinstance(target, dict) or len(target) != 1:
            raise RealtimeAPIError('give exactly one of {"clientId": id} or {"user": id}')
        if "user" in target:
            return await self.kick_user(target["user"], reason)
        if "clientId" in target:
            return int(await self.kick(target["clientId"], reason))
        raise RealtimeAPIError('give exactly one of {"clientId": id} or {"user": id}')


def js_namespace(api_for: Callable[[App], RealtimeAPI]) -> JsNamespace:
    """The host functions of ``fazt.realtime``; ``api_for(app)`` gives the app's API."""

    def arg(args: list[Any], index: int) -> Any:
        return args[index] if index < len(args) else None

    def host(name: str, run: Callable[[RealtimeAPI, list[Any]], Awaitable[Any]]) -> HostFunction:
        async def call(ctx: HostCallContext, args: list[Any]) -> Any:
            try:
                return await run(api_for(ctx.app), args)
            except RealtimeAPIError as error:
                raise HostCallError(f"fazt.realtime.{name}: {error}") from error

        return call

    def postable(
        name: str,
        run: Callable[[RealtimeAPI, list[Any]], Awaitable[Any]],
        post: Callable[[RealtimeAPI, list[Any]], Effect | None],
    ) -> PostableHostFunction:
        """A host function the JS worker may settle itself (``fire and forget``: its
        Promise resolves with null once the call is accepted)."""

        def post_call(ctx: HostCallContext, args: list[Any]) -> Posted | None:
            try:
                effect = post(api_for(ctx.app), args)
            except RealtimeAPIError as error:
                raise HostCallError(f"fazt.realtime.{name}: {error}") from error
            return None if effect is None else Posted(None, effect)

        return PostableHostFunction(host(name, run), post_call)

    async def broadcast(api: RealtimeAPI, args: list[Any]) -> dict[str, Any] | None:
        return await api.broadcast(arg(args, 0), arg(args, 1))

    async def history(api: RealtimeAPI, args: list[Any]) -> dict[str, Any]:
        options = arg(args, 1)
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise RealtimeAPIError("options must be an object {limit} or {since}")
        limit, since = options.get("limit"), options.get("since")
        return await api.history(arg(args, 0), limit=limit, since=since)

    async def broadcast_all(api: RealtimeAPI, args: list[Any]) -> None:
        await api.broadcast_all(arg(args, 0))

    async def subscribers(api: RealtimeAPI, args: list[Any]) -> list[dict[str, Any]]:
        return await api.subscribers(arg(args, 0))

    async def count(api: RealtimeAPI, args: list[Any]) -> int:
        return await api.count(arg(args, 0))

    async def kick(api: RealtimeAPI, args: list[Any]) -> bool | int:
        # A string keeps its first meaning (one clientId, a boolean); an object names
        # a user or a client and resolves to the number of connections closed.
        target = arg(args, 0)
        if isinstance(target, dict):
            return await api.kick_target(target, arg(args, 1))
        return await api.kick(target, arg(args, 1))

    return {
        "broadcast": postable(
            "broadcast", broadcast, lambda api, args: api.post_broadcast(arg(args, 0), arg(args, 1))
        ),
        "broadcastAll": postable(
            "broadcastAll", broadcast_all, lambda api, args: api.post_broadcast_all(arg(args, 0))
        ),
        "subscribers": host("subscribers", subscribers),
        "count": host("count", count),
        "kick": host("kick", kick),
        "history": host("history", history),
    }
