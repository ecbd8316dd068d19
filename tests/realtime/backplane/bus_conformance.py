"""The bus conformance suite: every ``Bus`` must pass it.

``BusConformance`` holds the tests; a backend's test module subclasses it and
provides a ``buses`` fixture returning a ``Cluster`` that builds buses of that
backend on one shared medium (a ``MemoryBroker``, a Redis server). Each test
starts two or more nodes and checks the contract of ``bus.Bus``: delivery
exactly once, never to the publisher, only on subscribed topics; numbered
publications to every subscribed node, the publisher included; a node's
messages in call order even when they are sent all at once; a channel
received as soon as ``subscribe_channel`` returned; app isolation; kicks
delivered to the addressed node only; and a dead node receiving nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import tornado.ioloop

from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import StreamPosition
from tests.realtime.backplane.support import Cluster, eventually, new_app


class BusConformance:
    """Every test runs against the subclass's ``buses`` fixture."""

    @pytest.fixture
    def buses(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[Cluster[Bus]]:
        raise NotImplementedError("a backend's test module provides the buses fixture")

    # -- channel topics ------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_publish_reaches_each_other_node_once_and_never_the_publisher(
        self, buses: Cluster[Bus]
    ) -> None:
        (a, ha), (b, hb), (c, hc) = [await buses.add() for _ in range(3)]
        app = new_app()
        for node in (a, b, c):
            await node.subscribe_channel(app, "room")
        await a.publish_channel(app, "room", b'{"n":1}')
        await b.publish_channel(app, "room", b'{"sentinel":"b"}')
        await c.publish_channel(app, "room", b'{"sentinel":"c"}')
        await eventually(lambda: b'{"sentinel":"c"}' in hb.payloads(), "sentinel at b")
        await eventually(lambda: b'{"sentinel":"b"}' in hc.payloads(), "sentinel at c")
        await eventually(lambda: len(ha.payloads()) == 2, "sentinels at a")

        assert hb.payloads() == [b'{"n":1}', b'{"sentinel":"c"}']
        assert hc.payloads() == [b'{"n":1}', b'{"sentinel":"b"}']
        assert ha.payloads() == [b'{"sentinel":"b"}', b'{"sentinel":"c"}']
        assert hb.of("channel")[0] == ("channel", app, "room", b'{"n":1}')

    @pytest.mark.gen_test
    async def test_payload_bytes_arrive_unchanged(self, buses: Cluster[Bus]) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        await b.subscribe_channel(app, "room")
        payload = '{"type":"message","data":{"text":"héllo \\n ✓","list":[1,2.5,null]}}'.encode()
        await a.publish_channel(app, "room", payload)
        await eventually(lambda: len(hb.payloads()) == 1, "the message")
        assert hb.payloads() == [payload]

    @pytest.mark.gen_test
    async def test_only_subscribed_channels_are_received(self, buses: Cluster[Bus]) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        await b.subscribe_channel(app, "wanted")
        await a.publish_channel(app, "other", b'{"n":"other"}')
        await a.publish_channel(app, "wanted", b'{"n":1}')
        await eventually(lambda: len(hb.payloads()) >= 1, "wanted message")

        await b.unsubscribe_channel(app, "wanted")
        await a.publish_channel(app, "wanted", b'{"n":2}')
        await b.subscribe_channel(app, "marker")
        await a.publish_channel(app, "marker", b'{"n":"marker"}')
        await eventually(lambda: b'{"n":"marker"}' in hb.payloads(), "marker")
        assert hb.payloads() == [b'{"n":1}', b'{"n":"marker"}']

    @pytest.mark.gen_test
    async def test_subscribing_twice_still_delivers_once(self, buses: Cluster[Bus]) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        await b.subscribe_channel(app, "room")
        await b.subscribe_channel(app, "room")
        await a.publish_channel(app, "room", b'{"n":1}')
        await a.publish_channel(app, "room", b'{"n":2}')
        await eventually(lambda: b'{"n":2}' in hb.payloads(), "second message")
        assert hb.payloads() == [b'{"n":1}', b'{"n":2}']

    @pytest.mark.gen_test(timeout=30)
    async def test_messages_sent_all_at_once_arrive_in_call_order(
        self, buses: Cluster[Bus]
    ) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        await b.subscribe_channel(app, "room")
        count = 1000
        # All in flight together (as concurrent requests or Promise.all would be).
        await asyncio.gather(
            *(a.publish_channel(app, "room", b'{"n":%d}' % i) for i in range(count))
        )
        await eventually(lambda: len(hb.payloads()) == count, "every message")
        assert hb.payloads() == [b'{"n":%d}' % i for i in range(count)]

    @pytest.mark.gen_test(timeout=60)
    async def test_a_channel_is_received_as_soon_as_subscribe_returns(
        self, buses: Cluster[Bus]
    ) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        rounds = 200
        for i in range(rounds):
            await b.subscribe_channel(app, f"round-{i}")
            await a.publish_channel(app, f"round-{i}", b'{"n":%d}' % i)
        await eventually(lambda: len(hb.payloads()) == rounds, "one message per round")
        assert sorted(hb.payloads()) == sorted(b'{"n":%d}' % i for i in range(rounds))

    @pytest.mark.gen_test
    async def test_a_second_subscribe_waits_for_the_first_one(self, buses: Cluster[Bus]) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        for i in range(50):
            channel = f"twice-{i}"
            first = asyncio.ensure_future(b.subscribe_channel(app, channel))
            await asyncio.sleep(0)  # the first call has sent its SUBSCRIBE
            await b.subscribe_channel(app, channel)  # returns no sooner than the first
            await a.publish_channel(app, channel, b'{"n":%d}' % i)
            await first
        await eventually(lambda: len(hb.payloads()) == 50, "one message per channel")

    # -- numbered publications ---------------------------------------------------------
    @pytest.mark.gen_test
    async def test_a_publication_reaches_every_subscribed_node_the_publisher_included(
        self, buses: Cluster[Bus]
    ) -> None:
        (a, ha), (b, hb), (_, hc) = [await buses.add() for _ in range(3)]
        app = new_app()
        await a.subscribe_channel(app, "room")
        await b.subscribe_channel(app, "room")
        first, second = StreamPosition(1, "e1"), StreamPosition(2, "e1")
        await a.publish_publication(app, "room", b'{"n":1}', first, "client-x")
        await a.publish_channel(app, "room", b'{"plain":1}')
        await a.publish_publication(app, "room", b'{"n":2}', second)
        await eventually(lambda: len(hb.events) == 3, "all three at b")
        await eventually(lambda: len(ha.events) == 2, "both publications at a")
        assert hb.events == [
            ("publication", app, "room", b'{"n":1}', first, "client-x"),
            ("channel", app, "room", b'{"plain":1}'),
            ("publication", app, "room", b'{"n":2}', second, None),
        ]
        assert ha.events == [event for event in hb.events if event[0] == "publication"]
        await asyncio.sleep(0.05)
        assert hc.events == []

    # -- app topics ------------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_publish_app_reaches_watching_nodes_once(self, buses: Cluster[Bus]) -> None:
        (a, ha), (b, hb), (c, hc) = [await buses.add() for _ in range(3)]
        app, other_app = new_app(), new_app()
        await a.watch_app(app)
        await b.watch_app(app)
        await c.watch_app(other_app)
        await a.publish_app(app, b'{"all":1}')
        await c.publish_app(app, b'{"all":"sentinel"}')
        await eventually(lambda: b'{"all":"sentinel"}' in hb.payloads(), "sentinel")
        assert hb.of("app") == [
            ("app", app, b'{"all":1}'),
            ("app", app, b'{"all":"sentinel"}'),
        ]
        await eventually(lambda: len(ha.payloads()) == 1, "sentinel at a")
        assert ha.payloads() == [b'{"all":"sentinel"}']
        assert hc.events == []

        await b.unwatch_app(app)
        await a.publish_app(app, b'{"all":2}')
        await b.subscribe_channel(app, "marker")
        await a.publish_channel(app, "marker", b'{"m":1}')
        await eventually(lambda: b'{"m":1}' in hb.payloads(), "marker")
        assert b'{"all":2}' not in hb.payloads()

    @pytest.mark.gen_test
    async def test_apps_are_isolated_on_the_bus(self, buses: Cluster[Bus]) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app1, app2 = new_app(), new_app()
        await b.subscribe_channel(app2, "chat")
        await b.subscribe_channel(app2, "marker")
        await a.publish_channel(app1, "chat", b'{"app":1}')
        # A channel name that looks like a key path must not escape its app.
        await a.publish_channel(app1, f"x:app:{app2}:ch:chat", b'{"app":"sneaky"}')
        await a.publish_channel(app2, "marker", b'{"m":1}')
        await eventually(lambda: b'{"m":1}' in hb.payloads(), "marker")
        assert hb.payloads() == [b'{"m":1}']

    @pytest.mark.gen_test
    async def test_a_failing_callback_does_not_stop_delivery(self, buses: Cluster[Bus]) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        await b.subscribe_channel(app, "room")
        hb.fail = True
        await a.publish_channel(app, "room", b'{"n":1}')
        await eventually(lambda: len(hb.payloads()) == 1, "first message")
        hb.fail = False
        await a.publish_channel(app, "room", b'{"n":2}')
        await eventually(lambda: len(hb.payloads()) == 2, "second message")

    # -- node topics: kicks -------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_a_kick_reaches_the_addressed_node_only(self, buses: Cluster[Bus]) -> None:
        (a, ha), (b, hb), (c, hc) = [await buses.add() for _ in range(3)]
        app = new_app()
        for node in (a, b, c):
            await node.watch_app(app)

        assert await a.send_kick(app, b.node_id, "client-b", "bye") is True
        await eventually(lambda: bool(hb.of("kick")), "kick at b")
        assert hb.of("kick") == [("kick", app, "client-b", "bye")]

        # A node may kick its own client through the bus too.
        assert await a.send_kick(app, a.node_id, "client-a", "self") is True
        await eventually(lambda: bool(ha.of("kick")), "kick at a")
        assert ha.of("kick") == [("kick", app, "client-a", "self")]
        assert hc.of("kick") == []
        assert len(hb.of("kick")) == 1

    @pytest.mark.gen_test
    async def test_a_kick_to_a_node_not_watching_the_app_is_false(
        self, buses: Cluster[Bus]
    ) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app, other_app = new_app(), new_app()
        await b.watch_app(other_app)
        assert await a.send_kick(app, b.node_id, "client-b", "x") is False
        assert await a.send_kick(app, "no-such-node", "client-b", "x") is False
        await b.watch_app(app)
        await b.unwatch_app(app)
        assert await a.send_kick(app, b.node_id, "client-b", "x") is False
        await asyncio.sleep(0.05)
        assert hb.of("kick") == []

    # -- keys and node death ------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_bad_app_uuids_raise_value_error(self, buses: Cluster[Bus]) -> None:
        (a, _) = await buses.add()
        for bad in ("", "a:b", "has space", "x" * 129, "é"):
            with pytest.raises(ValueError, match="app uuid"):
                await a.subscribe_channel(bad, "room")
            with pytest.raises(ValueError, match="app uuid"):
                await a.publish_channel(bad, "room", b"{}")
            with pytest.raises(ValueError, match="app uuid"):
                await a.watch_app(bad)

    @pytest.mark.gen_test(timeout=20)
    async def test_a_dead_node_receives_nothing_and_cannot_be_kicked(
        self, buses: Cluster[Bus]
    ) -> None:
        (a, _), (b, hb) = [await buses.add() for _ in range(2)]
        app = new_app()
        await b.subscribe_channel(app, "room")
        await b.watch_app(app)
        await buses.crash(b)
        await a.publish_channel(app, "room", b'{"n":1}')
        await a.publish_app(app, b'{"all":1}')
        assert await a.send_kick(app, b.node_id, "client-b", "x") is False
        await asyncio.sleep(0.2)
        assert hb.events == []
