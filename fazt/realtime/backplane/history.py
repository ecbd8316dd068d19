"""The history store interface: each history channel's recent publications, numbered.

A channel whose ``app.json`` rule asks for ``history`` keeps a *stream*: every
publication on it gets an **offset** (1, 2, 3, ... with no gap, one per
publication) and the stream has an **epoch**, a string that changes whenever
the stream's storage loses data (Redis restarted without persistence or was
flushed, the stream expired or was evicted). So a position ``(offset, epoch)``
names one point of one stream for good: with an unchanged epoch, every
publication after that offset is known, and a store answers either all of
them or "not recoverable", never a silent gap.

A publication is kept as its JSON text, ``{"data","timestamp"[,"from"],"offset"}``
(the ``offset`` last); the store builds it from a *head* that ends just before
the offset's digits. The channel's message is that publication with the
message *prefix* (``{"type":"message","channel":C,``) in place of its ``{``.

``publish`` is the one step that numbers a publication: it assigns the next
offset, stores the publication and hands the message to the bus for **every**
node that receives the channel, this one included, in offset order, so a
node's subscribers see the channel's publications in the order of their
offsets (``Bus.publish_publication``; the Redis store does all of it in one
Lua script).

Bounds (``HistoryPolicy``): at most ``size`` publications per stream, each kept
``ttl_seconds``; a stream's offset and epoch live until ``ttl_seconds`` after
its last publication or read. The memory store also keeps at most
``max_bytes`` of publications per stream and ``max_streams`` streams per app
(the least recently used stream goes first, and with it its epoch).

Implementations must pass ``tests/realtime/backplane/history_conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """One point of one stream: the offset of a publication (0 before the first) and
    the stream's epoch."""

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """What a channel's rule asks of its stream, with the node's bounds."""

    #: Publications kept (the newest).
    size: int
    #: How long a publication is kept, and a stream's position after its last use.
    ttl_seconds: int
    #: Bytes of publications kept per stream (memory store).
    max_bytes: int
    #: Streams kept per app (memory store; least recently used first out).
    max_streams: int


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """What a read found: the stream's position now, and publications oldest first."""

    position: StreamPosition
    #: Publication JSON texts, oldest first.
    publications: tuple[bytes, ...]
    #: For a read ``since`` a position: True when ``publications`` holds every
    #: publication after it (none lost, same epoch). Always True for other reads.
    complete: bool = True


class HistoryUnavailable(Exception):
    """The store cannot answer now (Redis unreachable): nothing was stored or sent."""


class HistoryStore(ABC):
    """A node's side of the history streams. All methods run on the IOLoop."""

    #: This node's id (the bus and the registry use the same one).
    node_id: str

    @abstractmethod
    async def start(self) -> None:
        """Connect; raises ``ConnectionError`` when the medium is unreachable."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect (graceful shutdown)."""

    @abstractmethod
    async def publish(
        self,
        app_uuid: str,
        channel: str,
        head: bytes,
        prefix: bytes,
        policy: HistoryPolicy,
        exclude: str | None = None,
    ) -> StreamPosition:
        """Number, store and send one publication; its position.

        The publication is ``head + b"<offset>}"``; the message sent to every node
        that receives ``channel`` (this one included, in offset order) is
        ``prefix + publication[1:]``, delivered to every subscriber but the
        client ``exclude`` (its sender). Raises ``HistoryUnavailable`` when the
        store cannot take it: then nothing was stored and nothing sent.
        """

    @abstractmethod
    async def read(
        self,
        app_uuid: str,
        channel: str,
        policy: HistoryPolicy,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
    ) -> HistoryRead:
        """The stream's position and publications, starting the stream (offset 0, a new
        epoch) when it has none.

        With ``since``: every publication after ``since.offset`` when all of them
        are still held in the same epoch (``complete``), else none and
        ``complete=False`` (another epoch, an offset beyond the top, publications
        gone). Otherwise the newest ``limit`` (default ``policy.size``).
        Raises ``HistoryUnavailable`` when the store cannot answer.
        """
