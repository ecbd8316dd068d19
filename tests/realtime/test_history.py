"""History channels through the realtime core: offsets, recovery, the history request,
holes, and the store going away. No sockets (fake transports, the memory store)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fazt.realtime.api import RealtimeAPIError
from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.history import (
    HistoryPolicy,
    HistoryRead,
    HistoryUnavailable,
    StreamPosition,
)
from fazt.realtime.backplane.history_memory import MemoryHistoryStore
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.backplane.registry_memory import MemoryRegistry
from fazt.realtime.channels import HistoryCaps
from fazt.realtime.clocks import Clocks
from fazt.realtime.core import RealtimeCore
from fazt.realtime.limits import Limits
from fazt.realtime.session import Session
from tests.realtime.fakes import Clock, FakeTransport
from tests.realtime.world import TOKENS, World, claims, make_app, make_world

HISTORY = {"size": 5, "ttlSeconds": 60}
MANIFEST = {
    "realtime": {
        "channels": {
            "room-*": {"history": HISTORY, "publish": True},
            "presence-room-*": {"history": HISTORY},
            "plain-*": {"publish": True},
        }
    }
}


def chat() -> Any:
    return make_app(**MANIFEST)


async def settle() -> None:
    """Let the bus deliver what was published (the memory bus delivers on the next turn)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def subscribe(
    w: World, session: Session, transport: FakeTransport, channel: str, **extra: Any
) -> list[dict[str, Any]]:
    await w.send(session, {"type": "subscribe", "channel": channel, **extra})
    await settle()
    return transport.take()


async def connect(
    w: World, app: Any, who: dict[str, Any] | None = None
) -> tuple[Session, FakeTransport]:
    """A connected client, its ``connected`` frame already read."""
    session, transport = await w.connect(app, who)
    transport.take()
    return session, transport


def messages(frames: list[dict[str, Any]]) -> list[tuple[Any, int]]:
    return [(f["data"], f["offset"]) for f in frames if f["type"] == "message"]


# -- offsets and positions ----------------------------------------------------------------
@pytest.mark.gen_test
async def test_subscribed_carries_the_position_even_before_the_first_publication() -> None:
    w = await make_world()
    app = chat()
    s, t = await connect(w, app)
    [reply] = await subscribe(w, s, t, "room-1")
    assert reply["type"] == "subscribed" and reply["offset"] == 0
    assert isinstance(reply["epoch"], str) and reply["epoch"]
    assert "recovered" not in reply  # nothing was asked to recover
    [plain] = await subscribe(w, s, t, "plain-1")
    assert plain == {"type": "subscribed", "channel": "plain-1"}


@pytest.mark.gen_test
async def test_every_message_on_a_history_channel_carries_its_offset() -> None:
    w = await make_world()
    app = chat()
    s, t = await connect(w, app)
    [reply] = await subscribe(w, s, t, "room-1")
    api = w.core.api(app)
    positions = [await api.broadcast("room-1", {"n": i}) for i in range(3)]
    assert positions == [{"offset": i + 1, "epoch": reply["epoch"]} for i in range(3)]
    assert await api.broadcast("plain-1", "x") is None
    await settle()
    frames = t.take()
    assert [f["offset"] for f in frames] == [1, 2, 3]
    assert frames[0] == {
        "type": "message",
        "channel": "room-1",
        "data": {"n": 0},
        "timestamp": 42,
        "offset": 1,
    }
    # broadcastAll and presence are not publications: no offset.
    await api.broadcast_all("all")
    assert "offset" not in t.take()[0]


@pytest.mark.gen_test
async def test_a_client_publish_is_numbered_and_not_echoed() -> None:
    w = await make_world()
    app = chat()
    (a, ta), (b, tb) = await connect(w, app), await connect(w, app)
    for session, transport in ((a, ta), (b, tb)):
        await subscribe(w, session, transport, "room-1")
    await w.send(a, {"type": "message", "channel": "room-1", "data": "hi"})
    await settle()
    assert ta.take() == []
    [message] = tb.take()
    assert (message["data"], message["offset"], message["from"]) == ("hi", 1, a.client_id)


# -- recovery ---------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_recovering_subscribe_gets_what_it_missed_exactly_once_in_order() -> None:
    w = await make_world()
    app = chat()
    api = w.core.api(app)
    s, t = await connect(w, app)
    await subscribe(w, s, t, "room-1")
    sender, ts = await connect(w, app)
    await subscribe(w, sender, ts, "room-1")
    await api.broadcast("room-1", "one")
    await settle()
    [seen] = t.take()
    await w.disconnect(s)
    # Missed while away: a server broadcast and a client publish (with its "from").
    await api.broadcast("room-1", "two")
    await w.send(sender, {"type": "message", "channel": "room-1", "data": "three"})
    await settle()
    back, tb = await connect(w, app)
    since = {"offset": seen["offset"], "epoch": (await api.history("room-1"))["epoch"]}
    frames = await subscribe(w, back, tb, "room-1", since=since)
    assert frames[0]["type"] == "subscribed" and frames[0]["recovered"] is True
    assert frames[0]["offset"] == 3
    assert messages(frames[1:]) == [("two", 2), ("three", 3)]
    assert frames[2]["from"] == sender.client_id and frames[2]["timestamp"] == 42
    # Then the live stream, without a duplicate.
    await api.broadcast("room-1", "four")
    await settle()
    assert messages(tb.take()) == [("four", 4)]


@pytest.mark.gen_test
async def test_recovery_that_cannot_be_done_says_so_and_goes_live() -> None:
    w = await make_world()
    app = chat()
    api = w.core.api(app)
    for i in range(8):  # size 5: offsets 1-3 are gone
        last = await api.broadcast("room-1", i)
    assert last is not None
    s, t = await connect(w, app)
    cases = [
        {"offset": 1, "epoch": last["epoch"]},  # trimmed
        {"offset": 2, "epoch": "another-epoch"},  # another epoch
        {"offset": 99, "epoch": last["epoch"]},  # beyond the top
    ]
    for since in cases:
        frames = await subscribe(w, s, t, "room-1", since=since)
        assert frames == [
            {
                "type": "subscribed",
                "channel": "room-1",
                "offset": 8,
                "epoch": last["epoch"],
                "recovered": False,
            }
        ]
        await w.send(s, {"type": "unsubscribe", "channel": "room-1"})
        t.take()
    ok = await subscribe(w, s, t, "room-1", since={"offset": 3, "epoch": last["epoch"]})
    assert ok[0]["recovered"] is True and [f["offset"] for f in ok[1:]] == [4, 5, 6, 7, 8]
    await api.broadcast("room-1", "live")
    await settle()
    assert messages(t.take()) == [("live", 9)]


@pytest.mark.gen_test
async def test_since_on_a_channel_without_history_is_not_recovered() -> None:
    w = await make_world()
    s, t = await connect(w, chat())
    frames = await subscribe(w, s, t, "plain-1", since={"offset": 3, "epoch": "e"})
    assert frames == [{"type": "subscribed", "channel": "plain-1", "recovered": False}]
    again = await subscribe(w, s, t, "plain-1", since={"offset": 3, "epoch": "e"})
    assert again == frames  # an idempotent subscribe answers the same


@pytest.mark.gen_test
async def test_a_repeated_subscribe_answers_with_the_position_the_client_has() -> None:
    w = await make_world()
    app = chat()
    s, t = await connect(w, app)
    [first] = await subscribe(w, s, t, "room-1")
    await w.core.api(app).broadcast("room-1", 1)
    await settle()
    t.take()
    since = {"offset": 1, "epoch": first["epoch"]}
    [again] = await subscribe(w, s, t, "room-1", since=since)
    assert (again["offset"], again["recovered"]) == (1, True)
    [stale] = await subscribe(w, s, t, "room-1", since={**since, "offset": 0})
    assert stale["recovered"] is False


class GatedStore(MemoryHistoryStore):
    """The memory store with a gate before or after its reads: a slow store, so that
    publications can race a recovering subscribe."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus)
        self.gate = asyncio.Event()
        self.gate.set()
        self.after_read = False
        self.reading = asyncio.Event()

    async def read(
        self,
        app_uuid: str,
        channel: str,
        policy: HistoryPolicy,
        *,
        since: StreamPosition | None = None,
        limit: int | None = None,
    ) -> HistoryRead:
        self.reading.set()
        if not self.after_read:
            await self.gate.wait()
        read = await super().read(app_uuid, channel, policy, since=since, limit=limit)
        if self.after_read:
            await self.gate.wait()
        return read


async def gated_world() -> tuple[World, GatedStore]:
    bus = MemoryBus(node_id="n1")
    store = GatedStore(bus)
    w = await make_world(backplane=Backplane(bus, MemoryRegistry(node_id="n1"), store))
    return w, store


@pytest.mark.parametrize("after_read", [False, True], ids=["before-the-read", "after-the-read"])
@pytest.mark.gen_test
async def test_a_publication_during_recovery_arrives_once_and_in_order(after_read: bool) -> None:
    w, store = await gated_world()
    app = chat()
    api = w.core.api(app)
    for i in range(1, 3):
        position = await api.broadcast("room-1", i)
    assert position is not None
    presence_watcher, _ = await connect(w, app, claims("x"))
    s, t = await connect(w, app, claims("late"))
    store.gate.clear()
    store.after_read = after_read
    store.reading.clear()
    since = {"offset": 1, "epoch": position["epoch"]}
    subscribing = asyncio.ensure_future(
        w.send(s, {"type": "subscribe", "channel": "room-1", "since": since})
    )
    await store.reading.wait()
    # Published while the subscribe reads the store: before the read saw the top
    # (it is in the read and delivered live as well), or after it (live only).
    await api.broadcast("room-1", 3)
    await api.broadcast("room-1", 4)
    await settle()
    assert t.take() == []  # nothing before "subscribed"
    store.gate.set()
    await subscribing
    await settle()
    frames = t.take()
    assert frames[0]["type"] == "subscribed" and frames[0]["recovered"] is True
    assert messages(frames[1:]) == [(2, 2), (3, 3), (4, 4)]
    await api.broadcast("room-1", 5)
    await settle()
    assert messages(t.take()) == [(5, 5)]
    assert presence_watcher.closed is False


@pytest.mark.gen_test
async def test_the_store_unavailable_refuses_publications_and_subscribes_without_position() -> None:
    class DownStore(MemoryHistoryStore):
        async def publish(self, *args: Any, **kwargs: Any) -> StreamPosition:
            raise HistoryUnavailable("down")

        async def read(self, *args: Any, **kwargs: Any) -> HistoryRead:
            raise HistoryUnavailable("down")

    bus = MemoryBus(node_id="n1")
    w = await make_world(backplane=Backplane(bus, MemoryRegistry(node_id="n1"), DownStore(bus)))
    app = chat()
    s, t = await connect(w, app)
    other, to = await connect(w, app)
    frames = await subscribe(w, s, t, "room-1", since={"offset": 1, "epoch": "e"})
    assert frames == [{"type": "subscribed", "channel": "room-1", "recovered": False}]
    await subscribe(w, other, to, "room-1")
    await w.send(s, {"type": "message", "channel": "room-1", "data": "x"})
    [error] = t.take()
    assert (error["code"], error["channel"]) == ("history_unavailable", "room-1")
    with pytest.raises(RealtimeAPIError, match="history is unavailable"):
        await w.core.api(app).broadcast("room-1", "x")
    await w.send(s, {"type": "history", "channel": "room-1"})
    assert t.take()[0]["code"] == "history_unavailable"
    await settle()
    assert to.take() == []  # nothing was sent: no message without its number


# -- holes in a live stream ---------------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_lost_stream_is_announced_to_live_subscribers_before_the_next_message() -> None:
    w = await make_world()
    app = chat()
    api = w.core.api(app)
    s, t = await connect(w, app)
    [reply] = await subscribe(w, s, t, "room-1")
    await api.broadcast("room-1", "a")
    await settle()
    t.take()
    store = w.core.backplane.history
    assert isinstance(store, MemoryHistoryStore)
    store.data.clear()  # the storage lost the stream (as a Redis restart would)
    await api.broadcast("room-1", "b")
    await settle()
    hole, message = t.take()
    assert hole["type"] == "subscribed" and hole["recovered"] is False
    assert hole["offset"] == 0 and hole["epoch"] != reply["epoch"]
    assert (message["data"], message["offset"]) == ("b", 1)


# -- the history request ----------------------------------------------------------------------
@pytest.mark.gen_test
async def test_the_history_request() -> None:
    w = await make_world()
    app = chat()
    api = w.core.api(app)
    s, t = await connect(w, app)
    await w.send(s, {"type": "history", "channel": "room-1"})
    assert t.take()[-1]["code"] == "not_subscribed"
    await subscribe(w, s, t, "room-1")
    await subscribe(w, s, t, "plain-1")
    await w.send(s, {"type": "history", "channel": "plain-1"})
    assert t.take()[-1]["code"] == "history_disabled"
    for i in range(7):
        last = await api.broadcast("room-1", i)
    assert last is not None
    epoch = last["epoch"]
    await settle()
    t.take()

    async def history(**extra: Any) -> dict[str, Any]:
        await w.send(s, {"type": "history", "channel": "room-1", **extra})
        [reply] = t.take()
        return reply

    reply = await history()
    assert reply["type"] == "history" and (reply["offset"], reply["epoch"]) == (7, epoch)
    assert [p["offset"] for p in reply["publications"]] == [3, 4, 5, 6, 7]  # size 5
    assert reply["publications"][0] == {"data": 2, "timestamp": 42, "offset": 3}
    assert [p["data"] for p in (await history(limit=2))["publications"]] == [5, 6]
    assert len((await history(limit=500))["publications"]) == 5
    since = await history(since={"offset": 5, "epoch": epoch})
    assert [p["offset"] for p in since["publications"]] == [6, 7]
    gone = await history(since={"offset": 1, "epoch": epoch})
    assert gone["code"] == "history_unrecoverable"
    assert (await history(limit=0))["code"] == "invalid_message"
    assert (await history(limit=2, since={"offset": 5, "epoch": epoch}))["code"] == (
        "invalid_message"
    )


# -- the server API ----------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_api_history_and_its_refusals() -> None:
    w = await make_world()
    app = chat()
    api = w.core.api(app)
    with pytest.raises(RealtimeAPIError, match="channel has no history"):
        await api.history("plain-1")
    empty = await api.history("room-1")
    assert empty["publications"] == [] and empty["offset"] == 0
    first = await api.broadcast("room-1", {"n": 1})
    assert first == {"offset": 1, "epoch": empty["epoch"]}
    s, _ = await connect(w, app)
    await w.send(s, {"type": "subscribe", "channel": "room-1"})
    await w.send(s, {"type": "message", "channel": "room-1", "data": "hey"})
    got = await api.history("room-1", limit=5)
    assert got["publications"] == [
        {"data": {"n": 1}, "timestamp": 42, "offset": 1},
        {"data": "hey", "timestamp": 42, "from": s.client_id, "offset": 2},
    ]
    assert (await api.history("room-1", since=first))["publications"][0]["data"] == "hey"
    refusals: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (lambda: api.history("room-1", limit=0), "limit must be a positive integer"),
        (lambda: api.history("room-1", limit=True), "limit must be a positive integer"),
        (lambda: api.history("room-1", since=5), "since must be an object"),
        (lambda: api.history("room-1", since={"offset": -1, "epoch": "e"}), "since.offset"),
        (lambda: api.history("room-1", since={"offset": 1, "epoch": ""}), "since.epoch"),
        (lambda: api.history("room-1", limit=1, since=first), "limit or since, not both"),
        (
            lambda: api.history("room-1", since={"offset": 1, "epoch": "x"}),
            "since is not recoverable",
        ),
        (lambda: api.history(None), "channel is required"),
    ]
    for call, words in refusals:
        with pytest.raises(RealtimeAPIError, match=words):
            await call()


@pytest.mark.gen_test
async def test_history_caps_clamp_a_rule_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = RealtimeCore(
        Backplane(*_memory_parts()),
        TOKENS,
        limits=Limits(),
        clocks=Clocks(monotonic=Clock(), wall_ms=lambda: 42),
        history_caps=HistoryCaps(maxSize=2, maxTtlSeconds=30),
    )
    await core.start()
    try:
        app = make_app(
            realtime={"channels": {"room-*": {"history": {"size": 9, "ttlSeconds": 99}}}}
        )
        with caplog.at_level(logging.WARNING, logger="fazt.realtime"):
            api = core.api(app)
            for i in range(4):
                await api.broadcast("room-1", i)
            await api.broadcast("room-2", "x")
        assert [p["data"] for p in (await api.history("room-1"))["publications"]] == [2, 3]
        lines = [r.getMessage() for r in caplog.records if "realtime.history" in r.getMessage()]
        assert len(lines) == 1 and "using size 2, ttlSeconds 30" in lines[0], lines
    finally:
        await core.stop(0)


def _memory_parts() -> tuple[MemoryBus, MemoryRegistry, MemoryHistoryStore]:
    bus = MemoryBus(node_id="n1")
    return bus, MemoryRegistry(node_id="n1"), MemoryHistoryStore(bus)
