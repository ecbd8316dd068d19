"""One node's ordered writes to Redis: its PUBLISHes and history scripts, in call order.

Redis orders the messages of one channel per *connection* only: two PUBLISHes
sent at once over two pooled connections may reach subscribers swapped. So a
node sends every write whose order matters (bus publishes, history appends)
through one ``OrderedLane``, which owns one connection of its own. A write is
encoded at once (``resp``) and queued; every write queued during one turn of
the event loop goes out in one socket write at the end of that turn, and
writes keep flowing without waiting for earlier replies. Redis then runs them
in call order, and every subscriber on every node receives a node's messages
on one channel in that order.

Two kinds of write:

* ``send``: nobody waits for the reply (a bus publish). The lane's connection
  runs with ``CLIENT REPLY OFF``, so Redis sends no reply for these at all:
  no reply to write for Redis, none to read and match for the node. The
  caller learns at once whether the write was queued; one still unsent when
  the connection broke is counted in ``RedisLink.dropped_messages`` (one the
  kernel already took is Redis's to run, like any message sent before an
  outage);
* ``command`` and ``script``: the caller awaits the reply (a history append
  needs its offset). The write goes out between ``CLIENT REPLY ON`` and
  ``CLIENT REPLY OFF``; Redis answers one connection's commands in the order
  it read them, so the replies are matched to these writes in order.

The lane is bounded (``max_pending``): writes queued in the current loop turn
plus awaited writes without their reply yet; and the bytes the socket has not
taken (``MAX_BUFFERED_BYTES``). A write over either bound is not queued
(``send`` returns False, the others their fallback at once), counted in
``RedisLink.busy_failures``. While the link is down every write is refused at
once. A lost connection, or replies that stop coming for the socket timeout
while awaited writes wait for them, is an outage (``RedisLink.mark_down``):
every waiting write fails, and the link's reconnection opens the lane again.

Scripts run with EVALSHA (the link loads them at start and after every
reconnection); a script Redis has forgotten meanwhile (``SCRIPT FLUSH``) is
sent again with EVAL, logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from fazt.realtime.backplane.resp import Push, ReplyError, ReplyParser, encode_command

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection

log = logging.getLogger("fazt.realtime.backplane.redis")

#: Writes queued or waiting for their reply at most; more are refused at once.
DEFAULT_MAX_PENDING: Final = 10_000
#: Bytes the lane's socket may hold unsent (Redis reading slowly); more refuse writes.
MAX_BUFFERED_BYTES: Final = 16 * 1024 * 1024
#: Bytes asked of the socket per read.
_READ_BYTES: Final = 1 << 16

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
    socket_timeout: float

    @property
    def up(self) -> bool: ...

    def note_busy(self) -> None: ...

    def note_dropped(self, count: int = 1) -> None: ...

    def mark_down(self, exc: BaseException) -> None: ...


@dataclass(slots=True)
class _Awaited:
    """A write whose caller waits for its reply."""

    args: tuple[Any, ...]
    script: LuaScript | None
    future: asyncio.Future[Any]


#: The place of a ``CLIENT REPLY ON`` among the writes waiting for replies (its +OK).
_REPLY_ON: Final = None
_REPLIES_ON: Final = encode_command(("CLIENT", "REPLY", "ON"))
_REPLIES_OFF: Final = encode_command(("CLIENT", "REPLY", "OFF"))


class OrderedLane:
    """Sends ``link``'s ordered writes, in call order (see the module doc)."""

    def __init__(self, link: LaneLink, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._link = link
        #: Writes that may wait for their reply at once.
        self.max_pending = max_pending
        self._connection: AbstractConnection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parser = ReplyParser()
        #: One entry per reply to come, in order: ``_REPLY_ON`` or ``_Awaited``.
        self._waiting: deque[_Awaited | None] = deque()
        #: Encoded writes of this loop turn, sent together by ``_flush``.
        self._outgoing: list[bytes] = []
        #: How many of them are ``send`` writes (counted dropped if never sent).
        self._unsent = 0
        self._watchdog: asyncio.TimerHandle | None = None
        #: Replies read so far: the watchdog's sign that Redis is answering.
        self._answered = 0
        self._scripts: dict[str, LuaScript] = {}
        self._reloaded_logged = False

    @property
    def pending(self) -> int:
        """Writes queued in this loop turn or waiting for their reply."""
        return len(self._outgoing) + len(self._waiting)

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- what callers use -----------------------------------------------------------
    def send(self, *args: Any) -> bool:
        """Queue one Redis command after every write queued before it, without waiting for
        its reply; False when it was not queued (link down, or over the bound)."""
        if not self._admit():
            return False
        self._unsent += 1
        self._queue(encode_command(args))
        return True

    async def command(self, *args: Any, fallback: Any = None) -> Any:
        """Run one Redis command after every write queued before it; its reply or ``fallback``."""
        return await _reply_or(self._submit(args, None), fallback)

    async def script(
        self, script: LuaScript, keys: list[Any], args: list[Any], fallback: Any = None
    ) -> Any:
        """Run a Lua script after every write queued before it; its reply or ``fallback``."""
        self._scripts[script.sha] = script
        future = self._submit(("EVALSHA", script.sha, len(keys), *keys, *args), script)
        return await _reply_or(future, fallback)

    async def load_scripts(self, client: Redis) -> None:
        """SCRIPT LOAD every script used so far (the link calls it on every reconnection)."""
        for script in self._scripts.values():
            await client.script_load(script.source)

    def register(self, script: LuaScript) -> None:
        """Make ``script`` part of what ``load_scripts`` loads."""
        self._scripts[script.sha] = script

    # -- the connection -----------------------------------------------------------------
    async def open(self, connection: AbstractConnection) -> None:
        """Write over ``connection`` from now on (connected, authenticated, its database
        selected); the link opens one at start and after every reconnection."""
        await self.close()
        self._connection = connection
        self._writer = connection._writer
        reader = connection._reader
        if self._writer is None or reader is None:
            raise ConnectionError("the lane's Redis connection is not connected")
        self._loop = asyncio.get_running_loop()
        self._parser = ReplyParser()
        # Replies only for the writes that ask for them (see the module doc).
        self._writer.write(_REPLIES_OFF)
        self._reader = self._loop.create_task(self._read(reader))

    async def close(self) -> None:
        """Stop writing; writes waiting for a reply fail (their fallback, or counted dropped)."""
        reader, self._reader = self._reader, None
        connection, self._connection = self._connection, None
        self._writer = None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._fail_waiting()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()

    # -- writing --------------------------------------------------------------------------
    def _admit(self) -> bool:
        writer = self._writer
        if writer is None or not self._link.up:
            return False
        if (
            len(self._outgoing) + len(self._waiting) >= self.max_pending
            or writer.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES
        ):
            self._link.note_busy()
            return False
        return True

    def _submit(
        self, args: tuple[Any, ...], script: LuaScript | None
    ) -> asyncio.Future[Any] | None:
        """The future of a queued write's reply; None when it was not queued."""
        if not self._admit():
            return None
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[Any] = loop.create_future()
        self._awaited(_Awaited(args, script, future))
        return future

    def _awaited(self, write: _Awaited) -> None:
        """Queue ``write`` with its reply turned on (the lane's writes run without)."""
        self._waiting.append(_REPLY_ON)
        self._waiting.append(write)
        self._queue(_REPLIES_ON + encode_command(write.args) + _REPLIES_OFF)

    def _queue(self, data: bytes) -> None:
        outgoing = self._outgoing
        outgoing.append(data)
        if len(outgoing) == 1:
            # One socket write for everything queued during this loop turn.
            loop = self._loop
            assert loop is not None
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        outgoing = self._outgoing
        if not outgoing:
            return
        data = b"".join(outgoing) if len(outgoing) > 1 else outgoing[0]
        outgoing.clear()
        self._unsent = 0
        writer = self._writer
        if writer is None:
            return  # closed meanwhile: its writes were failed
        try:
            writer.write(data)
        except Exception as exc:
            self._lost(exc)
            return
        if self._watchdog is None and self._waiting:
            self._arm_watchdog()

    # -- replies --------------------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(_READ_BYTES)
                if not data:
                    raise ConnectionError("Redis closed the lane's connection")
                for reply in self._parser.feed(data):
                    self._answer(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(exc)

    def _answer(self, reply: Any) -> None:
        if isinstance(reply, Push):
            return  # a RESP3 notice Redis sent unasked, not the answer to a write
        if not self._waiting:
            raise ConnectionError("Redis sent a reply nobody asked for")
        write = self._waiting.popleft()
        self._answered += 1
        if write is None:
            if isinstance(reply, ReplyError):
                raise ConnectionError(f"Redis refused CLIENT REPLY ON: {reply.text}")
            return
        if isinstance(reply, ReplyError):
            if write.script is not None and reply.text.startswith("NOSCRIPT"):
                self._evaluate(write)
                return
            log.error(
                "Redis write %s failed on node %s: %s",
                write.args[0],
                self._link.node_id,
                reply.text,
            )
            reply = _FAILED
        if not write.future.done():
            write.future.set_result(reply)

    def _evaluate(self, write: _Awaited) -> None:
        """Send a script Redis forgot again as EVAL (with its source)."""
        if not self._reloaded_logged:
            self._reloaded_logged = True
            log.warning("Redis forgot fazt's scripts (SCRIPT FLUSH?): sending them again")
        assert write.script is not None
        args = ("EVAL", write.script.source, *write.args[2:])
        self._awaited(_Awaited(args, None, write.future))

    # -- failures -------------------------------------------------------------------------
    def _arm_watchdog(self) -> None:
        loop = self._loop
        if loop is not None:
            self._watchdog = loop.call_later(
                self._link.socket_timeout, self._check_progress, self._answered
            )

    def _check_progress(self, answered_before: int) -> None:
        """Replies must keep coming while writes wait for them; else Redis is unreachable."""
        self._watchdog = None
        if not self._waiting or self._writer is None:
            return
        if self._answered == answered_before:
            self._lost(TimeoutError(f"Redis did not answer for {self._link.socket_timeout:g} s"))
            return
        self._arm_watchdog()

    def _lost(self, exc: BaseException) -> None:
        """The connection broke: every waiting write fails, and the link goes down."""
        self._writer = None
        self._fail_waiting()
        self._link.mark_down(exc)

    def _fail_waiting(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._outgoing.clear()
        if self._unsent:
            self._link.note_dropped(self._unsent)
            self._unsent = 0
        waiting, self._waiting = self._waiting, deque()
        for write in waiting:
            if write is not None and not write.future.done():
                write.future.set_result(_FAILED)


async def _reply_or(future: asyncio.Future[Any] | None, fallback: Any) -> Any:
    if future is None:
        return fallback
    result = await future
    return fallback if result is _FAILED else result
