"""The server API: ``RealtimeAPI`` for Python and the ``fazt.realtime`` JS namespace.

Both are thin, app-scoped views of the hub: an API object or a host call can
only ever name its own app's channels and clients.
"""

from __future__ import annotations

import math
from typing import Any

from fazt.contracts.host_calls import HostCallContext, HostCallError, HostFunction
from fazt.kernel.app import App
from fazt.realtime.hub import Hub, HubError


class RealtimeAPI:
    """``fazt.realtime`` for one app, in Python. Every method raises ``HubError``
    (a clear sentence) for bad arguments or data over the size limit."""

    def __init__(self, hub: Hub, app: App) -> None:
        self._hub = hub
        self.app = app

    async def broadcast(self, channel: str, data: Any) -> None:
        await self._hub.broadcast(self.app, channel, data)

    async def broadcast_all(self, data: Any) -> None:
        await self._hub.broadcast_all(self.app, data)

    async def subscribers(self, channel: str) -> list[dict[str, Any]]:
        return await self._hub.subscribers(self.app, channel)

    async def count(self, channel: str | None = None) -> int:
        return await self._hub.count(self.app, channel)

    async def kick(self, client_id: str, reason: str = "") -> bool:
        return await self._hub.kick(self.app, client_id, reason)


def _arg(name: str, args: list[Any], index: int, what: str, *, optional: bool = False) -> Any:
    if index >= len(args) or args[index] is None:
        if optional:
            return None
        raise HostCallError(f"fazt.realtime.{name}: {what} is required")
    return args[index]


def _string(name: str, args: list[Any], index: int, what: str, *, optional: bool = False) -> Any:
    value = _arg(name, args, index, what, optional=optional)
    if value is not None and not isinstance(value, str):
        raise HostCallError(f"fazt.realtime.{name}: {what} must be a string")
    return value


def _check_data(name: str, data: Any) -> None:
    # JS numbers arrive as float; NaN/Infinity cannot be sent as JSON.
    if isinstance(data, float) and not math.isfinite(data):
        raise HostCallError(f"fazt.realtime.{name}: data must be JSON-serialisable")


def js_namespace(hub_of: Any) -> dict[str, HostFunction]:
    """The host functions of ``fazt.realtime``; ``hub_of()`` returns the running hub."""

    def api(ctx: HostCallContext) -> RealtimeAPI:
        return RealtimeAPI(hub_of(), ctx.app)

    async def call(name: str, coroutine: Any) -> Any:
        try:
            return await coroutine
        except HubError as error:
            raise HostCallError(f"fazt.realtime.{name}: {error}") from error

    async def broadcast(ctx: HostCallContext, args: list[Any]) -> Any:
        channel = _string("broadcast", args, 0, "channel")
        data = args[1] if len(args) > 1 else None
        _check_data("broadcast", data)
        await call("broadcast", api(ctx).broadcast(channel, data))
        return None

    async def broadcast_all(ctx: HostCallContext, args: list[Any]) -> Any:
        data = args[0] if args else None
        _check_data("broadcastAll", data)
        await call("broadcastAll", api(ctx).broadcast_all(data))
        return None

    async def subscribers(ctx: HostCallContext, args: list[Any]) -> Any:
        channel = _string("subscribers", args, 0, "channel")
        return await call("subscribers", api(ctx).subscribers(channel))

    async def count(ctx: HostCallContext, args: list[Any]) -> Any:
        channel = _string("count", args, 0, "channel", optional=True)
        return await call("count", api(ctx).count(channel))

    async def kick(ctx: HostCallContext, args: list[Any]) -> Any:
        client_id = _string("kick", args, 0, "clientId")
        reason = _string("kick", args, 1, "reason", optional=True) or ""
        return await call("kick", api(ctx).kick(client_id, reason))

    return {
        "broadcast": broadcast,
        "broadcastAll": broadcast_all,
        "subscribers": subscribers,
        "count": count,
        "kick": kick,
    }
