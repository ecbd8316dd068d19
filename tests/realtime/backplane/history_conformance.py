"""The history store conformance suite: every ``HistoryStore`` must pass it.

``HistoryConformance`` holds the tests; a backend's test module subclasses it
and provides a ``streams`` fixture: a ``HistoryNodes`` that builds nodes (a bus
and its history store) of that backend on one shared medium, ages the streams
(``age``: a hand-moved clock in memory, real time on Redis) and loses their
storage (``lose``: a reset memory, deleted Redis keys). Each test checks the
contract of ``history.HistoryStore``: offsets from 1 without gaps, an epoch per
stream that changes when the storage loses data, trimming by size and age,
``since`` at its edges, delivery to every subscribed node in offset order,
and concurrent publishers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop

from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import (
    HistoryPolicy,
    HistoryRead,
    HistoryStore,
    StreamPosition,
)
from fazt.realtime.protocol import message_prefix, publication_head
from tests.realtime.backplane.support import RecordingHandler, eventually, new_app


def policy(size: int = 100, ttl: int = 60, max_bytes: int = 1 << 20) -> HistoryPolicy:
    return HistoryPolicy(size=size, ttl_seconds=ttl, max_bytes=max_bytes, max_streams=100)


def head(n: Any, sender: str | None = None) -> bytes:
    return publication_head({"n": n}, 1_700_000_000_000, sender)


def offsets(read: HistoryRead) -> list[int]:
    return [json.loads(publication)["offset"] for publication in read.publications]


def data(read: HistoryRead) -> list[Any]:
    return [json.loads(publication)["data"]["n"] for publication in read.publications]


class HistoryNodes:
    """Nodes of one backend on one medium; a backend overrides the four hooks."""

    def __init__(self) -> None:
        self.nodes: list[tuple[Bus, HistoryStore, RecordingHandler]] = []

    def make(self) -> tuple[Bus, HistoryStore]:
        raise NotImplementedError

    async def age(self, seconds: float) -> None:
        """Let ``seconds`` pass for the streams."""
        raise NotImplementedError

    async def lose(self) -> None:
        """The storage loses every stream (a restart without persistence, a flush)."""
        raise NotImplementedError

    async def add(self) -> tuple[Bus, HistoryStore, RecordingHandler]:
        bus, store = self.make()
        handler = RecordingHandler()
        await bus.start(handler)
        await store.start()
        self.nodes.append((bus, store, handler))
        return bus, store, handler

    async def close(self) -> None:
        for bus, store, _ in self.nodes:
            try:
                await store.stop()
            finally:
                await bus.stop()


def run_close(io_loop: tornado.ioloop.IOLoop, nodes: HistoryNodes) -> None:
    io_loop.run_sync(nodes.close, timeout=10)


class HistoryConformance:
    """Every test runs against the subclass's ``streams`` fixture."""

    @pytest.fixture
    def streams(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[HistoryNodes]:
        raise NotImplementedError("a backend's test module provides the streams fixture")

    # -- offsets and epochs ------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_offsets_start_at_one_and_grow_by_one_in_one_epoch(
        self, streams: HistoryNodes
    ) -> None:
        _, store, _ = await streams.add()
        app = new_app()
        start = await store.read(app, "room", policy())
        assert start.position.offset == 0 and start.publications == () and start.complete
        assert start.position.epoch
        positions = [await store.publish(app, "room", head(i), b"{", policy()) for i in range(5)]
        assert [p.offset for p in positions] == [1, 2, 3, 4, 5]
        assert {p.epoch for p in positions} == {start.position.epoch}
        read = await store.read(app, "room", policy())
        assert read.position == positions[-1]
        assert offsets(read) == [1, 2, 3, 4, 5] and data(read) == [0, 1, 2, 3, 4]
        # The stored publication is the head completed with its offset, nothing else.
        assert read.publications[0] == head(0) + b"1}"

    @pytest.mark.gen_test
    async def test_streams_are_per_channel_and_per_app(self, streams: HistoryNodes) -> None:
        _, store, _ = await streams.add()
        app, other_app = new_app(), new_app()
        await store.publish(app, "a", head(1), b"{", policy())
        await store.publish(app, "a", head(2), b"{", policy())
        assert (await store.publish(app, "b", head(3), b"{", policy())).offset == 1
        assert (await store.publish(other_app, "a", head(4), b"{", policy())).offset == 1
        # A channel name that looks like a key path stays inside its own stream.
        sneaky = f"x:app:{other_app}:history:a"
        assert (await store.publish(app, sneaky, head(5), b"{", policy())).offset == 1
        assert data(await store.read(other_app, "a", policy())) == [4]
        assert data(await store.read(app, "a", policy())) == [1, 2]

    @pytest.mark.gen_test
    async def test_a_new_epoch_after_the_storage_lost_the_stream(
        self, streams: HistoryNodes
    ) -> None:
        _, store, _ = await streams.add()
        app = new_app()
        for i in range(3):
            before = await store.publish(app, "room", head(i), b"{", policy())
        await streams.lose()
        after = await store.read(app, "room", policy(), since=before)
        assert not after.complete and after.publications == ()
        assert after.position.offset == 0 and after.position.epoch != before.epoch
        again = await store.publish(app, "room", head("new"), b"{", policy())
        assert again == StreamPosition(1, after.position.epoch)
        # The old position stays unrecoverable: offset 1 of another epoch.
        stale = await store.read(app, "room", policy(), since=StreamPosition(0, before.epoch))
        assert not stale.complete

    # -- trimming ---------------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_only_the_newest_size_publications_are_kept(self, streams: HistoryNodes) -> None:
        _, store, _ = await streams.add()
        app = new_app()
        small = policy(size=3)
        for i in range(1, 6):
            top = await store.publish(app, "room", head(i), b"{", small)
        assert offsets(await store.read(app, "room", small)) == [3, 4, 5]
        assert offsets(await store.read(app, "room", small, limit=2)) == [4, 5]
        assert offsets(await store.read(app, "room", small, limit=50)) == [3, 4, 5]
        epoch = top.epoch
        gone = await store.read(app, "room", small, since=StreamPosition(1, epoch))
        assert not gone.complete and gone.position == top
        kept = await store.read(app, "room", small, since=StreamPosition(2, epoch))
        assert kept.complete and offsets(kept) == [3, 4, 5]

    @pytest.mark.gen_test(timeout=20)
    async def test_publications_older_than_the_ttl_are_gone(self, streams: HistoryNodes) -> None:
        _, store, _ = await streams.add()
        app = new_app()
        short = policy(ttl=2)
        first = await store.publish(app, "room", head(1), b"{", short)
        await streams.age(1.2)
        second = await store.publish(app, "room", head(2), b"{", short)
        await streams.age(1.2)
        # The first is 2.4 s old (gone), the second 1.2 s (kept); the epoch lives on.
        read = await store.read(app, "room", short)
        assert offsets(read) == [2] and read.position == second
        zero = StreamPosition(0, first.epoch)
        assert not (await store.read(app, "room", short, since=zero)).complete
        recovered = await store.read(app, "room", short, since=first)
        assert recovered.complete and offsets(recovered) == [2]

    @pytest.mark.gen_test(timeout=20)
    async def test_a_stream_unused_for_its_ttl_gets_a_new_epoch(
        self, streams: HistoryNodes
    ) -> None:
        _, store, _ = await streams.add()
        app = new_app()
        short = policy(ttl=1)
        last = await store.publish(app, "room", head(1), b"{", short)
        await streams.age(1.3)
        read = await store.read(app, "room", short, since=last)
        assert not read.complete
        assert read.position.offset == 0 and read.position.epoch != last.epoch

    # -- since at its edges -----------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_since_at_zero_the_top_and_beyond(self, streams: HistoryNodes) -> None:
        _, store, _ = await streams.add()
        app = new_app()
        size = 4
        rule = policy(size=size)
        empty = await store.read(app, "room", rule)
        # Recovery with nothing published yet works: offset 0 of the current epoch.
        nothing = await store.read(app, "room", rule, since=empty.position)
        assert nothing.complete and nothing.publications == ()
        for i in range(1, 4):
            top = await store.publish(app, "room", head(i), b"{", rule)
        epoch = top.epoch

        def since(offset: int, at: str = epoch) -> StreamPosition:
            return StreamPosition(offset, at)

        read = await store.read(app, "room", rule, since=since(0))
        assert read.complete and offsets(read) == [1, 2, 3]  # all still held
        read = await store.read(app, "room", rule, since=since(3))
        assert read.complete and read.publications == ()  # the top: nothing missed
        read = await store.read(app, "room", rule, since=since(4))
        assert not read.complete  # beyond the top: a position that never existed
        read = await store.read(app, "room", rule, since=since(2, "another-epoch"))
        assert not read.complete and read.position == top
        for i in range(4, 9):
            top = await store.publish(app, "room", head(i), b"{", rule)
        read = await store.read(app, "room", rule, since=since(top.offset - size))
        assert read.complete and offsets(read) == [5, 6, 7, 8]  # top - size: exactly held
        read = await store.read(app, "room", rule, since=since(top.offset - size - 1))
        assert not read.complete and read.publications == ()  # one more is gone
        read = await store.read(app, "room", rule, since=since(0))
        assert not read.complete

    # -- delivery ----------------------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_publish_reaches_every_subscribed_node_the_publisher_included(
        self, streams: HistoryNodes
    ) -> None:
        (a_bus, a, ha), (b_bus, _, hb), (_, _, hc) = [await streams.add() for _ in range(3)]
        app = new_app()
        await a_bus.subscribe_channel(app, "room")
        await b_bus.subscribe_channel(app, "room")
        prefix = message_prefix("room")
        position = await a.publish(app, "room", head(1, "sender-id"), prefix, policy(), "sender-id")
        await eventually(lambda: bool(ha.of("publication")) and bool(hb.of("publication")), "both")
        payload = prefix + (head(1, "sender-id") + b"1}")[1:]
        expected = ("publication", app, "room", payload, position, "sender-id")
        assert ha.of("publication") == [expected]
        assert hb.of("publication") == [expected]
        assert json.loads(payload) == {
            "type": "message",
            "channel": "room",
            "data": {"n": 1},
            "timestamp": 1_700_000_000_000,
            "from": "sender-id",
            "offset": 1,
        }
        await asyncio.sleep(0.05)
        assert hc.events == []  # not subscribed: nothing

    @pytest.mark.gen_test(timeout=30)
    async def test_concurrent_publishers_get_distinct_offsets_delivered_in_order(
        self, streams: HistoryNodes
    ) -> None:
        nodes = [await streams.add() for _ in range(3)]
        app = new_app()
        for bus, _, _ in nodes:
            await bus.subscribe_channel(app, "room")
        count = 60
        positions = await asyncio.gather(
            *(
                store.publish(app, "room", head(f"{index}-{i}"), b"{", policy(size=500))
                for i in range(count)
                for index, (_, store, _) in enumerate(nodes)
            )
        )
        total = count * len(nodes)
        assert sorted(p.offset for p in positions) == list(range(1, total + 1))
        assert len({p.epoch for p in positions}) == 1
        for _, _, handler in nodes:
            await eventually(lambda h=handler: len(h.of("publication")) == total, "every one")
            seen = [event[4].offset for event in handler.of("publication")]
            assert seen == list(range(1, total + 1)), "each node receives them in offset order"
        read = await nodes[0][1].read(app, "room", policy(size=500))
        assert offsets(read) == list(range(1, total + 1))
        # Each publisher's own publications are in its call order.
        for index in range(len(nodes)):
            mine = [n for n in data(read) if n.startswith(f"{index}-")]
            assert mine == [f"{index}-{i}" for i in range(count)]
