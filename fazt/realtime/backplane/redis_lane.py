"""One node's ordered writes to Redis: its PUBLISHes and history scripts, in call order.

Redis orders the messages of one channel per *connection* only: two PUBLISHes
sent at once over two pooled connections may reach subscribers swapped. So a
node sends every write whose order matters (bus publishes, history appends)
through one ``OrderedLane``: calls queue in call order, and one writer task
sends them in batches, one pipeline at a time, each batch after the previous
one was answered. Redis then runs them in call order, and every subscriber
on every node receives a node's messages on one channel in that order.

The queue is bounded (``max_pending`` writes): a write over the bound is not
queued and returns its fallback at once, counted in
``RedisLink.busy_failures``. While the link is down every write returns its
fallback at once, like ``RedisLink.call``; a batch that fails takes the link
down (an outage) or, for a busy pool, fails alone. Each write waits for its
own reply, so a caller learns whether its message went out.

Scripts run with EVALSHA (the link loads them at start and after every
reconnection); a script Redis has forgotten meanwhile (``SCRIPT FLUSH``) is
sent again with EVAL, logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("fazt.realtime.backplane.redis")

#: Writes sent in one pipeline at most.
MAX_BATCH: Final = 512
#: Writes waiting at most; more return their fallback at once.
DEFAULT_MAX_PENDING: Final = 10_000

_FAILED: Final = object()


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A Lua script for the lane: its source and SHA1 (as Redis names it)."""

    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> LuaScript:
        import hashlib

        return cls(source, hashlib.sha1(source.encode()).hexdigest())


class LaneLink(Protocol):
    """What the lane needs of its ``RedisLink``."""

    node_id: str

    @property
    def up(self) -> bool: ...

    async def call(self, fn: Callable[[Redis], Awaitable[Any]], fallback: Any) -> Any: ...

    def note_busy(self) -> None: ...


@dataclass(slots=True)
class _Write:
    args: tuple[Any, ...]
    script: LuaScript | None
    future: asyncio.Future[Any]


class OrderedLane:
    """Sends ``link``'s ordered writes, in call order (see the module doc)."""

    def __init__(self, link: LaneLink, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._link = link
        self._max_pending = max_pending
        self._queue: deque[_Write] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._scripts: dict[str, LuaScript] = {}
        self._reloaded_logged = False
        #: The batch being sent (failed by ``close`` if the writer is cancelled).
        self._sending: list[_Write] = []

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- what callers use -----------------------------------------------------------
    async def command(self, *args: Any, fallback: Any = None) -> Any:
        """Run one Redis command after every write queued before it; its reply or ``fallback``."""
        return await self._submit(args, None, fallback)

    async def script(
        self, script: LuaScript, keys: list[Any], args: list[Any], fallback: Any = None
    ) -> Any:
        """Run a Lua script after every write queued before it; its reply or ``fallback``."""
        self._scripts[script.sha] = script
        return await self._submit(
            ("EVALSHA", script.sha, len(keys), *keys, *args), script, fallback
        )

    async def load_scripts(self, client: Redis) -> None:
        """SCRIPT LOAD every script used so far (the link calls it on every reconnection)."""
        for script in self._scripts.values():
            await client.script_load(script.source)

    def register(self, script: LuaScript) -> None:
        """Make ``script`` part of what ``load_scripts`` loads."""
        self._scripts[script.sha] = script

    async def close(self) -> None:
        """Stop the writer; waiting writes return their fallback."""
        task, self._task = self._task, None
        self._wakeup = None  # a reopened link may run on another loop
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail(self._sending)
        self._fail(list(self._queue))
        self._queue.clear()

    # -- the writer -------------------------------------------------------------------
    async def _submit(self, args: tuple[Any, ...], script: LuaScript | None, fallback: Any) -> Any:
        link = self._link
        if not link.up:
            return fallback
        if len(self._queue) >= self._max_pending:
            link.note_busy()
            return fallback
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(args, script, future))
        self._start()
        result = await future
        return fallback if result is _FAILED else result

    def _start(self) -> None:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            await wakeup.wait()
            wakeup.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
                self._sending = batch
                await self._send(batch)
                self._sending = []

    async def _send(self, batch: list[_Write]) -> None:
        from redis.exceptions import NoScriptError

        replies = await self._link.call(lambda client: self._pipeline(client, batch), None)
        if replies is None:
            self._fail(batch)
            return
        retry: list[_Write] = []
        for write, reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                if write.script is not None and isinstance(reply, NoScriptError):
                    retry.append(write)
                    continue
                log.error(
                    "Redis write %s failed on node %s: %s", write.args[0], self._link.node_id, reply
                )
                self._settle(write, _FAILED)
            else:
                self._settle(write, reply)
        if retry:
            await self._evaluate(retry)

    async def _evaluate(self, writes: list[_Write]) -> None:
        """Send scripts Redis forgot again as EVAL (with their source), in order."""
        if not self._reloaded_logged:
            self._reloaded_logged = True
            log.warning("Redis forgot fazt's scripts (SCRIPT FLUSH?): sending them again")
        resend = [
            _Write(("EVAL", w.script.source, *w.args[2:]), None, w.future)
            for w in writes
            if w.script is not None
        ]
        replies = await self._link.call(lambda client: self._pipeline(client, resend), None)
        for write, reply in zip(resend, replies or [_FAILED] * len(resend), strict=True):
            self._settle(write, _FAILED if isinstance(reply, Exception) else reply)

    @staticmethod
    async def _pipeline(client: Redis, batch: list[_Write]) -> list[Any]:
        if len(batch) == 1:
            # A lone write skips the pipeline machinery (most writes of a quiet node).
            from redis.exceptions import ResponseError

            try:
                return [await client.execute_command(*batch[0].args)]  # type: ignore[no-untyped-call]
            except ResponseError as error:
                return [error]
        pipe = client.pipeline(transaction=False)
        for write in batch:
            pipe.execute_command(*write.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    @staticmethod
    def _settle(write: _Write, result: Any) -> None:
        if not write.future.done():
            write.future.set_result(result)

    def _fail(self, writes: list[_Write]) -> None:
        for write in writes:
            self._settle(write, _FAILED)
