"""``ChannelFeed``: a history channel's fan-out on one node, pure (no loop, no store)."""

from __future__ import annotations

from typing import Any

from fazt.realtime.backplane.history import HistoryRead, StreamPosition
from fazt.realtime.feed import ChannelFeed
from fazt.realtime.protocol import message_prefix, numbered_message, text_frame
from fazt.realtime.session import Session
from tests.realtime.fakes import FakeTransport, fake_session

E = "epoch-1"


def session(client_id: str) -> tuple[Session, FakeTransport]:
    return fake_session(client_id)


def publication(offset: int, epoch: str = E) -> tuple[bytes, StreamPosition]:
    body = b'{"data":%d,"timestamp":1,"offset":%d}' % (offset, offset)
    return text_frame(numbered_message(message_prefix("room"), body)), StreamPosition(offset, epoch)


PRESENCE = text_frame(b'{"type":"presence","channel":"room","event":"join","client":{"id":"x"}}')


def seen(transport: FakeTransport) -> list[Any]:
    """Offsets, ``("hole", offset, epoch)`` for an unasked ``subscribed``, "presence"."""
    found: list[Any] = []
    for m in transport.take():
        if m["type"] == "subscribed":
            found.append(("hole", m["offset"], m["epoch"]))
        else:
            found.append(m.get("offset", m["type"]))
    return found


def test_caught_up_subscribers_share_one_frame_and_skip_repeats() -> None:
    feed = ChannelFeed("room", 10)
    (a, ta), (b, tb) = session("a"), session("b")
    subscribers = {"a": a, "b": b}
    for offset in (1, 2, 2, 1, 3):  # repeats (a stale redelivery) are dropped
        feed.deliver(subscribers, *publication(offset))
    assert seen(ta) == seen(tb) == [1, 2, 3]
    frame, position = publication(4)
    feed.deliver(subscribers, frame, position, exclude="a")
    assert ta.frames == [] and tb.frames == [frame]
    assert feed.position == position


def test_a_gap_or_another_epoch_is_announced_before_the_publication() -> None:
    feed = ChannelFeed("room", 10)
    (a, ta), (b, tb) = session("a"), session("b")
    subscribers = {"a": a, "b": b}
    feed.deliver(subscribers, *publication(1))
    feed.deliver(subscribers, *publication(4), exclude="b")  # 2 and 3 never came
    feed.deliver(subscribers, *publication(1, "epoch-2"))
    assert seen(ta) == [1, ("hole", 3, E), 4, ("hole", 0, "epoch-2"), 1]
    # The sender of 4 does not get its own message, but it does learn of the hole.
    assert seen(tb) == [1, ("hole", 3, E), ("hole", 0, "epoch-2"), 1]


def test_a_syncing_subscriber_gets_subscribed_first_then_the_rest_once() -> None:
    feed = ChannelFeed("room", 10)
    (old, told), (new, tnew) = session("old"), session("new")
    subscribers = {"old": old, "new": new}
    feed.deliver({"old": old}, *publication(1))
    feed.start("new")
    feed.deliver(subscribers, *publication(2))
    feed.deliver(subscribers, PRESENCE)  # not a publication: it waits too
    feed.deliver(subscribers, *publication(3))
    assert tnew.frames == [] and seen(told) == [1, 2, "presence", 3]
    # The read saw up to 2 (3 was published after it) and recovered 2 from offset 1.
    read = HistoryRead(StreamPosition(2, E), (b'{"data":2,"timestamp":1,"offset":2}',))
    for frame in feed.finish("new", read, recovering=True):
        new.send(frame)
    assert tnew.messages[0] == {
        "type": "subscribed",
        "channel": "room",
        "offset": 2,
        "epoch": E,
        "recovered": True,
    }
    tnew.frames.pop(0)
    assert seen(tnew) == [2, "presence", 3]  # 2 once (from the read), then the rest
    assert feed.position_of("new") == feed.position  # caught up: no cursor left
    feed.deliver(subscribers, *publication(4))
    assert seen(tnew) == [4]


def test_a_subscriber_told_a_later_position_skips_what_is_still_in_flight() -> None:
    feed = ChannelFeed("room", 10)
    (old, told), (new, tnew) = session("old"), session("new")
    subscribers = {"old": old, "new": new}
    feed.deliver({"old": old}, *publication(1))
    feed.start("new")
    # The store already holds 3; publications 2 and 3 are still on their way here.
    frames = feed.finish("new", HistoryRead(StreamPosition(3, E), ()), recovering=False)
    assert [m["offset"] for m in map(_decode, frames)] == [3]
    for offset in (2, 3, 4):
        feed.deliver(subscribers, *publication(offset))
    assert seen(told) == [1, 2, 3, 4]
    assert seen(tnew) == [4]
    assert feed.position_of("new") == StreamPosition(4, E)


def test_too_many_frames_during_a_subscribe_close_the_subscriber_4101() -> None:
    feed = ChannelFeed("room", 3)
    (slow, tslow), (ok, tok) = session("slow"), session("ok")
    feed.start("slow")
    for offset in range(1, 5):
        feed.deliver({"slow": slow, "ok": ok}, *publication(offset))
    assert tslow.closed_with == (4101, "slow consumer")
    assert seen(tok) == [1, 2, 3, 4]
    assert feed.finish("slow", HistoryRead(StreamPosition(4, E), ()), recovering=False) == []


def test_without_a_read_the_subscriber_joins_the_live_stream() -> None:
    feed = ChannelFeed("room", 10)
    new, tnew = session("new")
    feed.start("new")
    feed.deliver({"new": new}, *publication(7))
    frames = feed.finish("new", None, recovering=True)
    for frame in frames:
        new.send(frame)
    assert tnew.take() == [
        {"type": "subscribed", "channel": "room", "recovered": False},
        {"type": "message", "channel": "room", "data": 7, "timestamp": 1, "offset": 7},
    ]


def _decode(frame: bytes) -> dict[str, Any]:
    transport = FakeTransport()
    transport.send_frame(frame)
    return transport.messages[0]
