"""A history channel as this node fans it out: in offset order, nothing twice, no silent hole.

Every publication of a history channel reaches each node through its bus in
offset order, the publishing node included (``Bus.publish_publication``). A
node's ``ChannelFeed`` for the channel keeps the position of the last
publication it fanned out, and a *cursor* for each local subscriber that has
not caught up with the feed yet:

* **syncing**: a subscriber whose subscribe is still reading the store. Every
  frame for it (publications, presence) waits in its cursor, at most
  ``max_waiting`` of them (more: the connection is closed 4101, as a full
  outgoing queue would be). When the read is done (``finish``) it gets
  ``subscribed``, the recovered publications, then what waited, minus the
  publications the read already gave it;
* **skipping**: publications up to the position it was told can still be in
  flight (published before the read, received after it): they are skipped
  for it. Once its position is the feed's it joins the others;
* **caught up**: every other subscriber. They all had the same publications,
  so they share the feed's position and get each frame with one shared write:
  the common case costs nothing per subscriber.

A publication that does not follow the position it is checked against (same
epoch, offset + 1) means a hole: another epoch (the storage lost data, e.g.
Redis restarted empty, or the stream expired) or a gap (this node missed
publications, e.g. while cut off from Redis). Each subscriber concerned then
first gets an unasked ``subscribed`` with ``"recovered": false`` and the
position just before that publication, so a client always learns of a hole.
A publication at or before the position is a repeat and is skipped.

Pure: no I/O, no clock. The hub owns one feed per history channel that has
local subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from fazt.realtime import protocol
from fazt.realtime.backplane.history import HistoryRead, StreamPosition
from fazt.realtime.fanout import fan_out
from fazt.realtime.session import Session

_DELIVER: Final = 0
_SKIP: Final = 1
_BREAK: Final = 2

#: One frame waiting for a syncing subscriber: (frame, its position or None, client to skip).
_Waiting = tuple[bytes, "StreamPosition | None", "str | None"]


def _verdict(current: StreamPosition | None, position: StreamPosition) -> int:
    """What a subscriber at ``current`` does with the publication at ``position``."""
    if current is None:
        return _DELIVER
    if position.epoch == current.epoch:
        if position.offset == current.offset + 1:
            return _DELIVER
        if position.offset <= current.offset:
            return _SKIP
    return _BREAK


class _Cursor:
    """A subscriber that has not caught up with the feed."""

    __slots__ = ("position", "waiting")

    def __init__(self) -> None:
        self.position: StreamPosition | None = None
        #: Frames held while the subscribe reads the store; None once it is done.
        self.waiting: list[_Waiting] | None = []


class ChannelFeed:
    """One history channel's fan-out on this node (see the module doc)."""

    __slots__ = ("_cursors", "_prefix", "channel", "max_waiting", "position")

    def __init__(self, channel: str, max_waiting: int) -> None:
        self.channel = channel
        self.max_waiting = max_waiting
        self._prefix = protocol.message_prefix(channel)
        #: The last publication fanned out to the caught-up subscribers.
        self.position: StreamPosition | None = None
        self._cursors: dict[str, _Cursor] = {}

    def is_syncing(self, client_id: str) -> bool:
        cursor = self._cursors.get(client_id)
        return cursor is not None and cursor.waiting is not None

    def position_of(self, client_id: str) -> StreamPosition | None:
        """The position of the last publication this subscriber got."""
        cursor = self._cursors.get(client_id)
        return self.position if cursor is None else cursor.position

    # -- subscribers coming and going ---------------------------------------------------
    def start(self, client_id: str) -> None:
        """A subscriber was added and its subscribe reads the store: hold its frames."""
        self._cursors[client_id] = _Cursor()

    def forget(self, client_id: str) -> None:
        """The subscriber left the channel."""
        self._cursors.pop(client_id, None)

    def finish(
        self,
        client_id: str,
        read: HistoryRead | None,
        *,
        recovering: bool,
        members: list[dict[str, object]] | None = None,
    ) -> list[bytes]:
        """The frames that end a subscribe, in order: ``subscribed``, the recovered
        publications, then the frames that waited.

        ``read`` is what the subscribe read (None: the store could not answer;
        then ``subscribed`` has no position and the subscriber simply joins
        the live stream). ``recovering``: the subscribe asked to recover
        (``since``), and ``read`` was made from it. Empty when the subscriber
        already left.
        """
        cursor = self._cursors.get(client_id)
        if cursor is None:
            return []
        recovered = recovering and read is not None and read.complete
        frames = [
            protocol.subscribed_frame(
                self.channel,
                members,
                position=read.position if read is not None else None,
                recovered=recovered if recovering else None,
            )
        ]
        if recovered and read is not None:
            prefix = self._prefix
            frames.extend(
                protocol.text_frame(protocol.numbered_message(prefix, publication))
                for publication in read.publications
            )
        cursor.position = read.position if read is not None else None
        waiting, cursor.waiting = cursor.waiting or [], None
        for frame, position, exclude in waiting:
            self._advance(cursor, client_id, frame, position, exclude, frames.append)
        if cursor.position is None or cursor.position == self.position:
            del self._cursors[client_id]
        return frames

    # -- fan-out ----------------------------------------------------------------------------
    def deliver(
        self,
        subscribers: dict[str, Session],
        frame: bytes,
        position: StreamPosition | None = None,
        exclude: str | None = None,
    ) -> None:
        """Fan ``frame`` out to ``subscribers`` (this channel's, on this node), but not to
        the client ``exclude``. ``position``: the publication's, None for frames that
        are not publications (presence)."""
        verdict = _DELIVER
        if position is not None:
            verdict = _verdict(self.position, position)
            if verdict != _SKIP:
                self.position = position
        cursors = self._cursors
        if verdict == _SKIP and not cursors:
            return
        hole = self._hole_frame(position) if verdict == _BREAK else None
        if not cursors:
            if hole is not None:
                fan_out(subscribers, hole)
            fan_out(subscribers, frame, exclude)
            return
        for client_id, session in tuple(subscribers.items()):
            cursor = cursors.get(client_id)
            if cursor is None:
                if verdict == _SKIP:
                    continue
                if hole is not None:
                    session.send(hole)
                if client_id != exclude:
                    session.send(frame)
            elif cursor.waiting is not None:
                if len(cursor.waiting) >= self.max_waiting:
                    # Too much arrived during one subscribe: a slow consumer.
                    del cursors[client_id]
                    session.close(
                        protocol.CLOSE_SLOW_CONSUMER,
                        protocol.close_reason(protocol.CLOSE_SLOW_CONSUMER),
                    )
                    continue
                cursor.waiting.append((frame, position, exclude))
            else:
                self._advance(cursor, client_id, frame, position, exclude, session.send)
                if cursor.position == self.position:
                    del cursors[client_id]

    def _advance(
        self,
        cursor: _Cursor,
        client_id: str,
        frame: bytes,
        position: StreamPosition | None,
        exclude: str | None,
        send: Callable[[bytes], None],
    ) -> None:
        """One frame for one cursor that is not syncing: skip it, pass it, or announce
        a hole before it."""
        if position is not None:
            verdict = _verdict(cursor.position, position)
            if verdict == _SKIP:
                return
            if verdict == _BREAK:
                send(self._hole_frame(position))
            cursor.position = position
        if client_id != exclude:
            send(frame)

    def _hole_frame(self, position: StreamPosition | None) -> bytes:
        assert position is not None
        return protocol.subscribed_frame(
            self.channel,
            position=StreamPosition(position.offset - 1, position.epoch),
            recovered=False,
        )
