"""The Redis history store: Redis Streams, one metadata hash per stream, two Lua scripts.

Each history channel is a stream (``XADD … MAXLEN size``) of its publications
plus a small hash with the top offset and the epoch (layout in
``redis_scripts``). ``HISTORY_PUBLISH`` assigns the offset, appends, trims by
size and age, refreshes the TTLs and PUBLISHes the message on the channel's
bus topic, all in one script: Redis runs scripts one at a time, so the order
in which the nodes receive a channel's publications is the order of their
offsets. The node sends it through its link's ordered lane, after every write
it queued before.

Every script call carries a fresh epoch candidate, used only when the
metadata is missing: a flushed or restarted Redis, or an expired stream,
gives a new epoch, so a client's old position reads as "not recoverable",
never as wrong data.

While Redis is unreachable both calls raise ``HistoryUnavailable`` at once
(the link's outage fallback): nothing is stored, nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fazt.realtime.backplane import redis_scripts as lua
from fazt.realtime.backplane.bus_redis import NO_EXCLUDE, channel_topic
from fazt.realtime.backplane.history import (
    HistoryPolicy,
    HistoryRead,
    HistoryStore,
    HistoryUnavailable,
    StreamPosition,
)
from fazt.realtime.backplane.history_memory import new_epoch
from fazt.realtime.backplane.key_safety import check_app_uuid
from fazt.realtime.backplane.redis_lane import LuaScript
from fazt.realtime.backplane.redis_link import RedisLink

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

_PUBLISH = LuaScript.of(lua.HISTORY_PUBLISH)


class RedisHistoryStore(HistoryStore):
    """One node's history on ``link``; ``prefix`` starts every key (``redis_scripts``)."""

    def __init__(self, link: RedisLink, *, node_id: str, prefix: str) -> None:
        self.link = link
        self.node_id = node_id
        self._prefix = prefix
        self._read: AsyncScript | None = None
        self._started = False

    def _keys(self, app_uuid: str, channel: str) -> list[str]:
        app = f"{self._prefix}:app:{check_app_uuid(app_uuid)}"
        return [f"{app}:history-meta:{channel}", f"{app}:history:{channel}"]

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("history store already started")
        await self.link.acquire()
        try:
            self._read = self.link.register_script(lua.HISTORY_READ)
            self.link.ordered.register(_PUBLISH)
            await self.link.ordered.load_scripts(self.link.client)
        except BaseException as exc:
            await self.link.release()
            if isinstance(exc, Exception) and not isinstance(exc, ConnectionError):
                raise ConnectionError(f"cannot reach Redis at {self.link.safe_url}: {exc}") from exc
            raise
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.link.release()

    async def publish(
        self,
        app_uuid: str,
        channel: str,
        head: bytes,
        prefix: bytes,
        policy: HistoryPolicy,
        exclude: str | None = None,
    ) -> StreamPosition:
        keys = self._keys(app_uuid, channel)
        args: list[Any] = [
            new_epoch(),
            policy.ttl_seconds * 1000,
            policy.size,
            head,
            prefix,
            channel_topic(self._prefix, app_uuid, channel),
            self.node_id,
            exclude or NO_EXCLUDE,
        ]
        reply = await self.link.ordered.script(_PUBLISH, keys, args)
        if not isinstance(reply, list) or len(reply) != 2:
            raise HistoryUnavailable("the history store (Redis) is unreachable")
        return StreamPosition(int(reply[0]), _text(reply[1]))

    async def read(
        self,
        app_uuid: str,
        channel: str,
        policy: HistoryPolicy,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
    ) -> HistoryRead:
        script = self._read
        if script is None:
            raise HistoryUnavailable("the history store is not started")
        keys = self._keys(app_uuid, channel)
        base: list[Any] = [new_epoch(), policy.ttl_seconds * 1000, policy.size]
        if since is not None:
            args = [*base, "since", since.offset, since.epoch]
        else:
            args = [*base, "limit", policy.size if limit is None else limit, ""]
        reply = await self.link.call(lambda client: script(keys=keys, args=args), None)
        if not isinstance(reply, list) or len(reply) < 3:
            raise HistoryUnavailable("the history store (Redis) is unreachable")
        position = StreamPosition(int(reply[0]), _text(reply[1]))
        publications = tuple(bytes(item) for item in reply[3:])
        return HistoryRead(position, publications, complete=int(reply[2]) == 1)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
