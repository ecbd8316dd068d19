"""Client publishes that wait for a verdict, published in the order they were sent.

A client message on a channel with an ``onPublish`` hook cannot go out until
its hook answered, and hooks of one connection's messages run concurrently,
so they may finish in any order. A *lane* per connection and channel keeps
the messages in arrival order: each waits for its own verdict and for every
message before it, then is acted on (published or refused). The connection
meanwhile keeps reading frames: a slow hook holds its lane, not the socket.

Bounded: a connection has at most ``MAX_PENDING_PER_CONNECTION`` messages
waiting in all its lanes; ``add`` refuses the next one (the caller answers
the client at once). A lane whose step raises logs it and goes on with the
next message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from fazt.realtime.tasks import Tasks

log = logging.getLogger("fazt.realtime")

#: Messages one connection may have waiting for their hooks, over all its channels.
MAX_PENDING_PER_CONNECTION: Final = 32

T = TypeVar("T")

#: (app uuid, client id): one connection.
Connection = tuple[str, str]


class _Lane(Generic[T]):
    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: deque[tuple[asyncio.Future[T], Callable[[T], Awaitable[None]]]] = deque()


class PublishLanes(Generic[T]):
    """Per connection and channel, verdicts acted on in arrival order."""

    def __init__(self, tasks: Tasks, max_pending: int = MAX_PENDING_PER_CONNECTION) -> None:
        self._tasks = tasks
        self._max_pending = max_pending
        self._lanes: dict[tuple[Connection, str], _Lane[T]] = {}
        self._pending: dict[Connection, int] = {}

    def pending(self, connection: Connection) -> int:
        """Messages of the connection waiting in its lanes."""
        return self._pending.get(connection, 0)

    def add(
        self,
        connection: Connection,
        channel: str,
        verdict: asyncio.Future[T],
        act: Callable[[T], Awaitable[None]],
    ) -> bool:
        """Queue ``act(verdict)`` behind the connection's earlier messages on ``channel``.

        ``verdict`` must already be running (its work overlaps the earlier
        ones'). False when the connection has too many messages waiting: then
        nothing was queued and ``verdict`` is cancelled.
        """
        waiting = self._pending.get(connection, 0)
        if waiting >= self._max_pending:
            verdict.cancel()
            return False
        self._pending[connection] = waiting + 1
        key = (connection, channel)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.steps.append((verdict, act))
            self._tasks.spawn(self._drain(key, lane))
        else:
            lane.steps.append((verdict, act))
        return True

    async def _drain(self, key: tuple[Connection, str], lane: _Lane[T]) -> None:
        connection = key[0]
        try:
            while lane.steps:
                verdict, act = lane.steps[0]
                try:
                    await act(await verdict)
                except Exception:
                    log.exception("realtime: a hooked publish on %s failed", key[1])
                finally:
                    lane.steps.popleft()
                    self._release(connection)
        finally:
            # Only a cancelled drain (shutdown) leaves steps behind: drop them.
            while lane.steps:
                lane.steps.popleft()[0].cancel()
                self._release(connection)
            # Nothing runs between the last check and here (no await): no step is lost.
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _release(self, connection: Connection) -> None:
        left = self._pending[connection] - 1
        if left:
            self._pending[connection] = left
        else:
            del self._pending[connection]
