"""The in-memory history store: the default for one process, and shared by in-process nodes.

Each stream is a bounded ring (``collections.deque``) of publications with the
time each was stored, plus its top offset and epoch. Bounds, all enforced on
every publish and read:

* at most ``size`` publications and ``max_bytes`` bytes of them per stream (the
  oldest go first);
* a publication older than ``ttl_seconds`` is gone;
* a stream unused (no publish, no read) for ``ttl_seconds`` is gone, epoch
  included: the next use starts a new epoch;
* at most ``max_streams`` streams per app: a new stream evicts the app's least
  recently used one, whose epoch is then gone too. Each publish also drops the
  app's least recently used stream when it has expired, so idle streams do not
  wait for a reader to free their memory.

So an app holds at most ``max_streams * max_bytes`` of history on a node.

Several ``MemoryHistoryStore``s sharing one ``MemoryHistoryData`` behave like
the nodes of a cluster in one process: the streams are shared, and each store
sends its publications through its own node's ``MemoryBus``
(``publish_publication``), which delivers them to every subscribed node in
the order of their offsets. Everything runs on one IOLoop, so numbering a
publication and handing it to the bus is one atomic step.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import (
    HistoryPolicy,
    HistoryRead,
    HistoryStore,
    StreamPosition,
)
from fazt.realtime.backplane.key_safety import check_app_uuid


def new_epoch() -> str:
    """A fresh epoch: 48 random bits as 12 hex digits (no two streams share one)."""
    return secrets.token_hex(6)


class _Stream:
    """One channel's stream: top offset, epoch, and its newest publications."""

    __slots__ = ("bytes", "entries", "epoch", "top", "used_at")

    def __init__(self, epoch: str, now: float) -> None:
        self.epoch = epoch
        self.top = 0
        #: (offset, publication, stored at), oldest first
        self.entries: deque[tuple[int, bytes, float]] = deque()
        self.bytes = 0
        self.used_at = now

    def trim(self, policy: HistoryPolicy, now: float) -> None:
        """Drop what is past the size, byte and age bounds."""
        entries = self.entries
        oldest_kept = now - policy.ttl_seconds
        while entries and (
            len(entries) > policy.size
            or self.bytes > policy.max_bytes
            or entries[0][2] <= oldest_kept
        ):
            self.bytes -= len(entries.popleft()[1])

    def position(self) -> StreamPosition:
        return StreamPosition(self.top, self.epoch)


class MemoryHistoryData:
    """The streams of one process (shared by the in-process nodes of a test cluster).

    ``clock`` gives seconds on a monotonic clock (tests move it by hand).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        #: app -> channel -> stream, least recently used first
        self._apps: dict[str, OrderedDict[str, _Stream]] = {}

    def stream(self, app_uuid: str, channel: str, policy: HistoryPolicy) -> _Stream:
        """The channel's stream, trimmed and marked used now; started when missing or expired."""
        now = self.clock()
        streams = self._apps.setdefault(app_uuid, OrderedDict())
        stream = streams.get(channel)
        if stream is not None and now - stream.used_at >= policy.ttl_seconds:
            del streams[channel]
            stream = None
        if stream is None:
            while len(streams) >= policy.max_streams:
                streams.popitem(last=False)
            stream = streams[channel] = _Stream(new_epoch(), now)
        else:
            streams.move_to_end(channel)
        # The least recently used stream of the app goes when it has expired.
        oldest_name, oldest = next(iter(streams.items()))
        if oldest is not stream and now - oldest.used_at >= policy.ttl_seconds:
            del streams[oldest_name]
        stream.used_at = now
        stream.trim(policy, now)
        return stream

    def append(self, stream: _Stream, publication: bytes, policy: HistoryPolicy) -> None:
        now = self.clock()
        stream.entries.append((stream.top, publication, now))
        stream.bytes += len(publication)
        stream.trim(policy, now)

    def clear(self) -> None:
        """Forget every stream, epochs included (what a restart does)."""
        self._apps.clear()

    def stream_count(self, app_uuid: str) -> int:
        """Streams the app holds now (for tests and memory accounting)."""
        return len(self._apps.get(app_uuid, ()))


class MemoryHistoryStore(HistoryStore):
    """One node's history on a ``MemoryHistoryData``; it publishes through ``bus``."""

    def __init__(self, bus: Bus, data: MemoryHistoryData | None = None) -> None:
        self.node_id = bus.node_id
        self._bus = bus
        self.data = data if data is not None else MemoryHistoryData()

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to disconnect; the streams stay with their ``MemoryHistoryData``."""

    async def publish(
        self,
        app_uuid: str,
        channel: str,
        head: bytes,
        prefix: bytes,
        policy: HistoryPolicy,
        exclude: str | None = None,
    ) -> StreamPosition:
        stream = self.data.stream(check_app_uuid(app_uuid), channel, policy)
        stream.top += 1
        publication = head + b"%d}" % stream.top
        self.data.append(stream, publication, policy)
        position = stream.position()
        # No await before this call: numbering and sending are one step, so the
        # bus sees the publications of a channel in offset order.
        await self._bus.publish_publication(
            app_uuid, channel, prefix + publication[1:], position, exclude
        )
        return position

    async def read(
        self,
        app_uuid: str,
        channel: str,
        policy: HistoryPolicy,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
    ) -> HistoryRead:
        stream = self.data.stream(check_app_uuid(app_uuid), channel, policy)
        position = stream.position()
        entries = stream.entries
        if since is None:
            count = policy.size if limit is None else max(0, min(limit, policy.size))
            newest = list(entries)[len(entries) - count :] if count else []
            return HistoryRead(position, tuple(entry[1] for entry in newest))
        missing = stream.top - since.offset
        if since.epoch != stream.epoch or missing < 0:
            return HistoryRead(position, (), complete=False)
        if missing == 0:
            return HistoryRead(position, ())
        if len(entries) < missing:
            return HistoryRead(position, (), complete=False)
        after = list(entries)[len(entries) - missing :]
        return HistoryRead(position, tuple(entry[1] for entry in after))
