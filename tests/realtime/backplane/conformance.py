"""The backplane conformance suite: every backplane must pass it.

``BackplaneConformance`` holds the tests; a backend's test module subclasses it
and provides a ``cluster`` fixture returning a ``Cluster`` that builds nodes of
that backend on one shared medium (a ``MemoryBroker``, a Redis server). Each
test starts two or more nodes and checks the contract of ``base.Backplane``:
bus delivery (exactly once, never to the publisher, only subscribed topics),
app isolation, cluster-wide registry answers, presence deduplicated per user
across nodes, kicks routed to the owner node, and the death of a node.

Exactly-once is checked with a sentinel: after the message under test, another
node publishes a sentinel on the same topic, and Redis (like the memory
broker) delivers in order, so once the sentinel has arrived any duplicate or
echo would have arrived too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import tornado.ioloop

from fazt.realtime.backplane.base import Backplane

WAIT_SECONDS = 5.0
_counter = itertools.count()


async def eventually(
    predicate: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Wait until ``predicate()`` holds; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def eventually_async(
    probe: Callable[[], Any], expected: Any, what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Wait until ``await probe()`` equals ``expected``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value == expected:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value!r}, want {expected!r}")
        await asyncio.sleep(0.01)


@dataclass
class RecordingHandler:
    """A ``BackplaneHandler`` that records every call (the hub side, faked)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    fail: bool = False

    def _record(self, *event: Any) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("hub callback failure (on purpose)")

    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        self._record("channel", app_uuid, channel, payload)

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        self._record("app", app_uuid, payload)

    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None:
        self._record("kick", app_uuid, client_id, reason)

    def presence_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        self._record("expired", app_uuid, channel, member)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]

    def payloads(self, channel: str | None = None) -> list[bytes]:
        return [
            event[-1]
            for event in self.events
            if (event[0] == "channel" and (channel is None or event[2] == channel))
            or (event[0] == "app" and channel is None)
        ]


@dataclass
class Node:
    backplane: Backplane
    handler: RecordingHandler


class Cluster:
    """Builds nodes of one backend on one shared medium; a backend overrides ``make``."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.killed: list[Node] = []

    def make(self, ttl: float) -> Backplane:
        raise NotImplementedError

    async def kill(self, node: Node) -> None:
        """Make ``node`` die as with ``kill -9``: no cleanup, no more refreshing."""
        raise NotImplementedError

    async def add_node(self, ttl: float = 30.0) -> Node:
        node = Node(self.make(ttl), RecordingHandler())
        await node.backplane.start(node.handler)
        self.nodes.append(node)
        return node

    async def crash(self, node: Node) -> None:
        await self.kill(node)
        self.killed.append(node)

    async def close(self) -> None:
        for node in self.nodes:
            if node not in self.killed:
                await node.backplane.stop()


def new_app() -> str:
    """A fresh app uuid, so tests sharing one medium never see each other."""
    return f"app-{next(_counter)}-{id(object()):x}"


def run_close(io_loop: tornado.ioloop.IOLoop, cluster: Cluster) -> None:
    io_loop.run_sync(cluster.close, timeout=WAIT_SECONDS)


class BackplaneConformance:
    """Every test runs against the subclass's ``cluster`` fixture."""

    #: Short presence TTL for the death tests.
    short_ttl = 0.6

    @pytest.fixture
    def cluster(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[Cluster]:
        raise NotImplementedError("a backend's test module provides the cluster fixture")

    # -- bus ----------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_publish_reaches_each_other_node_once_and_never_the_publisher(
        self, cluster: Cluster
    ) -> None:
        a, b, c = [await cluster.add_node() for _ in range(3)]
        app = new_app()
        for node in (a, b, c):
            await node.backplane.subscribe_channel(app, "room")
        await a.backplane.publish_channel(app, "room", b'{"n":1}')
        await b.backplane.publish_channel(app, "room", b'{"sentinel":"b"}')
        await c.backplane.publish_channel(app, "room", b'{"sentinel":"c"}')
        await eventually(lambda: b'{"sentinel":"c"}' in b.handler.payloads(), "sentinel at b")
        await eventually(lambda: b'{"sentinel":"b"}' in c.handler.payloads(), "sentinel at c")
        await eventually(lambda: len(a.handler.payloads()) == 2, "sentinels at a")

        assert b.handler.payloads() == [b'{"n":1}', b'{"sentinel":"c"}']
        assert c.handler.payloads() == [b'{"n":1}', b'{"sentinel":"b"}']
        assert a.handler.payloads() == [b'{"sentinel":"b"}', b'{"sentinel":"c"}']
        assert b.handler.of("channel")[0] == ("channel", app, "room", b'{"n":1}')

    @pytest.mark.gen_test
    async def test_payload_bytes_arrive_unchanged(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app = new_app()
        await b.backplane.subscribe_channel(app, "room")
        payload = '{"type":"message","data":{"text":"héllo \\n ✓","list":[1,2.5,null]}}'.encode()
        await a.backplane.publish_channel(app, "room", payload)
        await eventually(lambda: len(b.handler.payloads()) == 1, "the message")
        assert b.handler.payloads() == [payload]

    @pytest.mark.gen_test
    async def test_only_subscribed_channels_are_received(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app = new_app()
        await b.backplane.subscribe_channel(app, "wanted")
        await a.backplane.publish_channel(app, "other", b'{"n":"other"}')
        await a.backplane.publish_channel(app, "wanted", b'{"n":1}')
        await eventually(lambda: len(b.handler.payloads()) >= 1, "wanted message")

        await b.backplane.unsubscribe_channel(app, "wanted")
        await a.backplane.publish_channel(app, "wanted", b'{"n":2}')
        await b.backplane.subscribe_channel(app, "marker")
        await a.backplane.publish_channel(app, "marker", b'{"n":"marker"}')
        await eventually(lambda: b'{"n":"marker"}' in b.handler.payloads(), "marker")
        assert b.handler.payloads() == [b'{"n":1}', b'{"n":"marker"}']

    @pytest.mark.gen_test
    async def test_subscribing_twice_still_delivers_once(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app = new_app()
        await b.backplane.subscribe_channel(app, "room")
        await b.backplane.subscribe_channel(app, "room")
        await a.backplane.publish_channel(app, "room", b'{"n":1}')
        await a.backplane.publish_channel(app, "room", b'{"n":2}')
        await eventually(lambda: b'{"n":2}' in b.handler.payloads(), "second message")
        assert b.handler.payloads() == [b'{"n":1}', b'{"n":2}']

    @pytest.mark.gen_test
    async def test_publish_app_reaches_watching_nodes_once(self, cluster: Cluster) -> None:
        a, b, c = [await cluster.add_node() for _ in range(3)]
        app, other_app = new_app(), new_app()
        await a.backplane.watch_app(app)
        await b.backplane.watch_app(app)
        await c.backplane.watch_app(other_app)
        await a.backplane.publish_app(app, b'{"all":1}')
        await c.backplane.publish_app(app, b'{"all":"sentinel"}')
        await eventually(lambda: b'{"all":"sentinel"}' in b.handler.payloads(), "sentinel")
        assert b.handler.of("app") == [
            ("app", app, b'{"all":1}'),
            ("app", app, b'{"all":"sentinel"}'),
        ]
        await eventually(lambda: len(a.handler.payloads()) == 1, "sentinel at a")
        assert a.handler.payloads() == [b'{"all":"sentinel"}']
        assert c.handler.events == []

        await b.backplane.unwatch_app(app)
        await a.backplane.publish_app(app, b'{"all":2}')
        await b.backplane.subscribe_channel(app, "marker")
        await a.backplane.publish_channel(app, "marker", b'{"m":1}')
        await eventually(lambda: b'{"m":1}' in b.handler.payloads(), "marker")
        assert b'{"all":2}' not in b.handler.payloads()

    @pytest.mark.gen_test
    async def test_apps_are_isolated_on_the_bus(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app1, app2 = new_app(), new_app()
        await b.backplane.subscribe_channel(app2, "chat")
        await b.backplane.subscribe_channel(app2, "marker")
        await a.backplane.publish_channel(app1, "chat", b'{"app":1}')
        # A channel name that looks like a key path must not escape its app.
        await a.backplane.publish_channel(app1, f"x:app:{app2}:ch:chat", b'{"app":"sneaky"}')
        await a.backplane.publish_channel(app2, "marker", b'{"m":1}')
        await eventually(lambda: b'{"m":1}' in b.handler.payloads(), "marker")
        assert b.handler.payloads() == [b'{"m":1}']

    @pytest.mark.gen_test
    async def test_a_failing_hub_callback_does_not_stop_delivery(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app = new_app()
        await b.backplane.subscribe_channel(app, "room")
        b.handler.fail = True
        await a.backplane.publish_channel(app, "room", b'{"n":1}')
        await eventually(lambda: len(b.handler.payloads()) == 1, "first message")
        b.handler.fail = False
        await a.backplane.publish_channel(app, "room", b'{"n":2}')
        await eventually(lambda: len(b.handler.payloads()) == 2, "second message")

    # -- kicks --------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_kick_is_routed_to_the_owner_node_only(self, cluster: Cluster) -> None:
        a, b, c = [await cluster.add_node() for _ in range(3)]
        app = new_app()
        for node in (a, b, c):
            await node.backplane.watch_app(app)
        await b.backplane.add_connection(app, "client-b")
        await a.backplane.add_connection(app, "client-a")

        assert await a.backplane.send_kick(app, "client-b", "bye") is True
        await eventually(lambda: bool(b.handler.of("kick")), "kick at b")
        assert b.handler.of("kick") == [("kick", app, "client-b", "bye")]

        # A node may kick its own client through the backplane too.
        assert await a.backplane.send_kick(app, "client-a", "self") is True
        await eventually(lambda: bool(a.handler.of("kick")), "kick at a")
        assert a.handler.of("kick") == [("kick", app, "client-a", "self")]
        assert c.handler.of("kick") == []
        assert len(b.handler.of("kick")) == 1

    @pytest.mark.gen_test
    async def test_kick_of_unknown_or_other_app_client_is_false(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app, other_app = new_app(), new_app()
        await b.backplane.watch_app(app)
        await b.backplane.watch_app(other_app)
        await b.backplane.add_connection(app, "client-b")
        assert await a.backplane.send_kick(app, "nobody", "x") is False
        assert await a.backplane.send_kick(other_app, "client-b", "x") is False
        await b.backplane.remove_connection(app, "client-b")
        assert await a.backplane.send_kick(app, "client-b", "x") is False

    # -- registry -----------------------------------------------------------
    @pytest.mark.gen_test
    async def test_connection_counts_are_cluster_wide_and_per_app(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app1, app2 = new_app(), new_app()
        total_before = await a.backplane.count_connections()
        await a.backplane.add_connection(app1, "c1")
        await b.backplane.add_connection(app1, "c2")
        await b.backplane.add_connection(app2, "c3")
        for node in (a, b):
            assert await node.backplane.count_connections(app1) == 2
            assert await node.backplane.count_connections(app2) == 1
            assert await node.backplane.count_connections() == total_before + 3
        await b.backplane.remove_connection(app1, "c2")
        assert await a.backplane.count_connections(app1) == 1
        assert await a.backplane.count_connections() == total_before + 2
        # Removing twice, or removing what was never added, changes nothing.
        await b.backplane.remove_connection(app1, "c2")
        await b.backplane.remove_connection(app1, "never")
        assert await a.backplane.count_connections(app1) == 1

    @pytest.mark.gen_test
    async def test_subscribers_and_counts_are_cluster_wide(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app, other_app = new_app(), new_app()
        info1 = {"clientId": "c1", "connectedAt": 1, "metadata": {"sub": "alice", "x": [1, "ü"]}}
        info2 = {"clientId": "c2", "connectedAt": 2, "metadata": {}}
        await a.backplane.add_subscription(app, "room", "c1", info1)
        await b.backplane.add_subscription(app, "room", "c2", info2)
        await b.backplane.add_subscription(app, "other", "c2", info2)
        await b.backplane.add_subscription(other_app, "room", "c9", {"clientId": "c9"})

        for node in (a, b):
            found = await node.backplane.subscribers(app, "room")
            assert sorted(found, key=lambda info: str(info["clientId"])) == [info1, info2]
            assert await node.backplane.count_subscribers(app, "room") == 2
            assert await node.backplane.count_channels(app) == 2
        assert await a.backplane.subscribers(app, "empty") == []
        assert await a.backplane.count_subscribers(app, "empty") == 0

        await b.backplane.remove_subscription(app, "other", "c2")
        assert await a.backplane.count_channels(app) == 1
        await a.backplane.remove_subscription(app, "room", "c1")
        assert await b.backplane.subscribers(app, "room") == [info2]
        assert await b.backplane.count_subscribers(app, "room") == 1
        await b.backplane.remove_subscription(app, "room", "c2")
        assert await a.backplane.count_channels(app) == 0
        assert await a.backplane.count_channels(other_app) == 1

    # -- presence -------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_presence_is_deduplicated_per_user_across_nodes(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app = new_app()
        alice = {"id": "alice", "name": "Alice", "color": "red"}
        bob = {"id": "bob", "name": "Bob"}
        assert await a.backplane.presence_join(app, "presence-room", "tab1", alice) is True
        assert await b.backplane.presence_join(app, "presence-room", "tab2", alice) is False
        assert await b.backplane.presence_join(app, "presence-room", "tab3", bob) is True
        for node in (a, b):
            assert await node.backplane.presence_members(app, "presence-room") == [alice, bob]

        assert await a.backplane.presence_leave(app, "presence-room", "tab1", "alice") is False
        assert await b.backplane.presence_members(app, "presence-room") == [alice, bob]
        assert await b.backplane.presence_leave(app, "presence-room", "tab2", "alice") is True
        assert await a.backplane.presence_members(app, "presence-room") == [bob]
        # A leave for a connection that is not present announces nothing.
        assert await b.backplane.presence_leave(app, "presence-room", "tab2", "alice") is False
        assert await b.backplane.presence_leave(app, "presence-room", "ghost", "bob") is False
        assert await a.backplane.presence_members(app, "presence-room") == [bob]

    @pytest.mark.gen_test
    async def test_presence_join_of_a_connection_twice_counts_once(self, cluster: Cluster) -> None:
        (a,) = [await cluster.add_node()]
        app = new_app()
        alice = {"id": "alice"}
        assert await a.backplane.presence_join(app, "presence-x", "tab1", alice) is True
        assert await a.backplane.presence_join(app, "presence-x", "tab1", alice) is False
        assert await a.backplane.presence_leave(app, "presence-x", "tab1", "alice") is True
        assert await a.backplane.presence_members(app, "presence-x") == []

    @pytest.mark.gen_test
    async def test_presence_keeps_join_order_and_app_isolation(self, cluster: Cluster) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app1, app2 = new_app(), new_app()
        users = [{"id": f"user-{i}", "name": f"U{i}"} for i in range(5)]
        for i, user in enumerate(users):
            node = (a, b)[i % 2]
            assert await node.backplane.presence_join(app1, "presence-r", f"c{i}", user)
        assert await a.backplane.presence_join(app2, "presence-r", "z", {"id": "zed"})
        assert await b.backplane.presence_members(app1, "presence-r") == users
        assert await b.backplane.presence_members(app2, "presence-r") == [{"id": "zed"}]
        assert await b.backplane.presence_members(app1, "presence-other") == []

    @pytest.mark.gen_test
    async def test_bad_arguments_raise_value_error(self, cluster: Cluster) -> None:
        (a,) = [await cluster.add_node()]
        for bad in ("", "a:b", "has space", "x" * 129, "é"):
            with pytest.raises(ValueError, match="app uuid"):
                await a.backplane.add_connection(bad, "c1")
            with pytest.raises(ValueError, match="app uuid"):
                await a.backplane.subscribe_channel(bad, "room")
        with pytest.raises(ValueError, match="presence member"):
            await a.backplane.presence_join(new_app(), "presence-x", "c1", {"name": "no id"})
        with pytest.raises(ValueError, match="presence member"):
            await a.backplane.presence_join(new_app(), "presence-x", "c1", {"id": 5})

    # -- node death -------------------------------------------------------------
    @pytest.mark.gen_test(timeout=20)
    async def test_dead_node_vanishes_within_ttl_and_is_reported_once(
        self, cluster: Cluster
    ) -> None:
        ttl = self.short_ttl
        a, b, c = [await cluster.add_node(ttl=ttl) for _ in range(3)]
        app = new_app()
        await c.backplane.subscribe_channel(app, "room")
        await c.backplane.watch_app(app)
        await a.backplane.add_connection(app, "ca")
        await c.backplane.add_connection(app, "cc1")
        await c.backplane.add_connection(app, "cc2")
        await a.backplane.add_subscription(app, "room", "ca", {"clientId": "ca"})
        await c.backplane.add_subscription(app, "room", "cc1", {"clientId": "cc1"})
        await c.backplane.add_subscription(app, "solo", "cc1", {"clientId": "cc1"})
        # alice: tabs on a and c; bob and carol: only on c (two tabs for bob).
        alice, bob, carol = {"id": "alice"}, {"id": "bob", "n": 1}, {"id": "carol"}
        await a.backplane.presence_join(app, "presence-r", "ca", alice)
        await c.backplane.presence_join(app, "presence-r", "cc1", alice)
        await c.backplane.presence_join(app, "presence-r", "cc1b", bob)
        await c.backplane.presence_join(app, "presence-r", "cc2", bob)
        await c.backplane.presence_join(app, "presence-r", "cc3", carol)
        assert await a.backplane.count_connections(app) == 3

        await cluster.crash(c)

        def expired() -> list[tuple[Any, ...]]:
            return a.handler.of("expired") + b.handler.of("expired")

        await eventually(lambda: len(expired()) >= 2, "leave reports", timeout=ttl * 4 + 2)
        await eventually_async(
            lambda: a.backplane.count_connections(app), 1, "count drop", timeout=ttl * 4 + 2
        )
        assert await b.backplane.subscribers(app, "room") == [{"clientId": "ca"}]
        assert await b.backplane.count_subscribers(app, "solo") == 0
        assert await a.backplane.count_channels(app) == 1
        assert await b.backplane.presence_members(app, "presence-r") == [alice]
        # Two more sweep periods: nothing is reported a second time.
        await asyncio.sleep(ttl)
        assert sorted(expired(), key=repr) == sorted(
            [("expired", app, "presence-r", bob), ("expired", app, "presence-r", carol)], key=repr
        )
        # The dead node's client can no longer be kicked.
        assert await a.backplane.send_kick(app, "cc2", "x") is False

    @pytest.mark.gen_test(timeout=20)
    async def test_dead_node_receives_nothing_and_live_nodes_keep_their_entries(
        self, cluster: Cluster
    ) -> None:
        ttl = self.short_ttl
        a, b = [await cluster.add_node(ttl=ttl) for _ in range(2)]
        app = new_app()
        await a.backplane.add_connection(app, "ca")
        await a.backplane.presence_join(app, "presence-r", "ca", {"id": "alice"})
        await b.backplane.subscribe_channel(app, "room")
        await cluster.crash(b)
        await a.backplane.publish_channel(app, "room", b'{"n":1}')
        # Live nodes refresh: after several TTLs their entries are all still there.
        await asyncio.sleep(ttl * 3)
        assert b.handler.events == []
        assert a.handler.of("expired") == []
        assert await a.backplane.count_connections(app) == 1
        assert await a.backplane.presence_members(app, "presence-r") == [{"id": "alice"}]

    @pytest.mark.gen_test
    async def test_graceful_stop_removes_entries_at_once_without_reports(
        self, cluster: Cluster
    ) -> None:
        a, b = [await cluster.add_node() for _ in range(2)]
        app = new_app()
        await b.backplane.add_connection(app, "cb")
        await b.backplane.add_subscription(app, "room", "cb", {"clientId": "cb"})
        await b.backplane.presence_join(app, "presence-r", "cb", {"id": "bob"})
        await b.backplane.stop()
        cluster.killed.append(b)  # already stopped
        assert await a.backplane.count_connections(app) == 0
        assert await a.backplane.count_subscribers(app, "room") == 0
        assert await a.backplane.presence_members(app, "presence-r") == []
        assert a.handler.of("expired") == []
