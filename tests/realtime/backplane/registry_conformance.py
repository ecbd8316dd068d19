"""The registry conformance suite: every ``Registry`` must pass it.

``RegistryConformance`` holds the tests; a backend's test module subclasses it
and provides a ``registries`` fixture returning a ``Cluster`` that builds
registries of that backend on one shared medium (a ``MemoryRegistryStore``, a
Redis server). Each test starts one or more nodes and checks the contract of
``registry.Registry``: cluster-wide counts, subscriber lists, which node holds
a client, presence deduplicated per user across nodes, app isolation, and
first and last subscribers decided once across nodes, held vacancies, and
the death of a node (its entries vanish within the TTL, each presence member
and each channel it left empty reported once on one survivor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop

from fazt.realtime.backplane.registry import Registry
from tests.realtime.backplane.support import Cluster, eventually, eventually_async, new_app


class RegistryConformance:
    """Every test runs against the subclass's ``registries`` fixture."""

    #: Short presence TTL for the death tests.
    short_ttl = 0.6

    @pytest.fixture
    def registries(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[Cluster[Registry]]:
        raise NotImplementedError("a backend's test module provides the registries fixture")

    # -- connections ------------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_the_node_holding_a_client_is_found_per_app(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app, other_app = new_app(), new_app()
        await b.add_connection(app, "client-b")
        await a.add_connection(app, "client-a")
        for node in (a, b):
            assert await node.connection_node(app, "client-b") == b.node_id
            assert await node.connection_node(app, "client-a") == a.node_id
        assert await a.connection_node(app, "nobody") is None
        assert await a.connection_node(other_app, "client-b") is None
        await b.remove_connection(app, "client-b")
        assert await a.connection_node(app, "client-b") is None

    @pytest.mark.gen_test
    async def test_connection_counts_are_cluster_wide_and_per_app(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app1, app2 = new_app(), new_app()
        total_before = await a.count_connections()
        await a.add_connection(app1, "c1")
        await b.add_connection(app1, "c2")
        await b.add_connection(app2, "c3")
        for node in (a, b):
            assert await node.count_connections(app1) == 2
            assert await node.count_connections(app2) == 1
            assert await node.count_connections() == total_before + 3
        await b.remove_connection(app1, "c2")
        assert await a.count_connections(app1) == 1
        assert await a.count_connections() == total_before + 2
        # Removing twice, or removing what was never added, changes nothing.
        await b.remove_connection(app1, "c2")
        await b.remove_connection(app1, "never")
        assert await a.count_connections(app1) == 1

    @pytest.mark.gen_test
    async def test_subscribers_and_counts_are_cluster_wide(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app, other_app = new_app(), new_app()
        info1 = {"clientId": "c1", "connectedAt": 1, "metadata": {"sub": "alice", "x": [1, "ü"]}}
        info2 = {"clientId": "c2", "connectedAt": 2, "metadata": {}}
        await a.add_subscription(app, "room", "c1", info1)
        await b.add_subscription(app, "room", "c2", info2)
        await b.add_subscription(app, "other", "c2", info2)
        await b.add_subscription(other_app, "room", "c9", {"clientId": "c9"})

        for node in (a, b):
            found = await node.subscribers(app, "room")
            assert sorted(found, key=lambda info: str(info["clientId"])) == [info1, info2]
            assert await node.count_subscribers(app, "room") == 2
            assert await node.count_channels(app) == 2
        assert await a.subscribers(app, "empty") == []
        assert await a.count_subscribers(app, "empty") == 0

        await b.remove_subscription(app, "other", "c2")
        assert await a.count_channels(app) == 1
        await a.remove_subscription(app, "room", "c1")
        assert await b.subscribers(app, "room") == [info2]
        assert await b.count_subscribers(app, "room") == 1
        await b.remove_subscription(app, "room", "c2")
        assert await a.count_channels(app) == 0
        assert await a.count_channels(other_app) == 1

    # -- occupancy: first and last subscribers ------------------------------------------
    @pytest.mark.gen_test
    async def test_first_and_last_subscriber_are_decided_once_across_nodes(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app, other_app = new_app(), new_app()
        assert await a.add_subscription(app, "room", "c1", {"clientId": "c1"}) is True
        assert await b.add_subscription(app, "room", "c2", {"clientId": "c2"}) is False
        # Adding the same subscription again is not a first subscriber.
        assert await a.add_subscription(app, "room", "c1", {"clientId": "c1"}) is False
        # Channels and apps are apart.
        assert await b.add_subscription(app, "lobby", "c2", {"clientId": "c2"}) is True
        assert await b.add_subscription(other_app, "room", "c9", {"clientId": "c9"}) is True
        assert await b.remove_subscription(app, "room", "c2") is False
        assert await a.remove_subscription(app, "room", "c1") is True
        # Removing again, or what was never there, is not a last subscriber.
        assert await a.remove_subscription(app, "room", "c1") is False
        assert await b.remove_subscription(app, "room", "never") is False
        assert await a.remove_subscription(app, "nowhere", "c1") is False
        # Without a held vacancy, the next subscriber occupies the channel again.
        assert await b.add_subscription(app, "room", "c2", {"clientId": "c2"}) is True

    @pytest.mark.gen_test
    async def test_concurrent_first_and_last_subscribers_are_decided_once(
        self, registries: Cluster[Registry]
    ) -> None:
        nodes = [node for node, _ in [await registries.add() for _ in range(3)]]
        app = new_app()
        for round_ in range(5):
            channel = f"race-{round_}"
            firsts = await asyncio.gather(
                *(
                    node.add_subscription(app, channel, f"c{i}", {"clientId": f"c{i}"})
                    for i, node in enumerate(nodes)
                )
            )
            assert sorted(firsts) == [False, False, True]
            lasts = await asyncio.gather(
                *(
                    node.remove_subscription(app, channel, f"c{i}", hold_vacancy=round_ % 2 == 1)
                    for i, node in enumerate(nodes)
                )
            )
            assert sorted(lasts) == [False, False, True]

    @pytest.mark.gen_test
    async def test_a_held_vacancy_is_cancelled_by_a_returning_subscriber(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app = new_app()
        await a.add_subscription(app, "room", "c1", {"clientId": "c1"})
        assert await a.remove_subscription(app, "room", "c1", hold_vacancy=True) is True
        # A subscriber comes back (on another node) before the vacancy is settled:
        # the channel never counted as vacated, so this is no first subscriber.
        assert await b.add_subscription(app, "room", "c2", {"clientId": "c2"}) is False
        assert await a.settle_vacancy(app, "room") is False
        # It leaves again: now b holds the vacancy, and only b can settle it.
        assert await b.remove_subscription(app, "room", "c2", hold_vacancy=True) is True
        assert await a.settle_vacancy(app, "room") is False
        assert await b.settle_vacancy(app, "room") is True
        assert await b.settle_vacancy(app, "room") is False
        # Settled: the next subscriber is a first one again.
        assert await a.add_subscription(app, "room", "c3", {"clientId": "c3"}) is True
        # A vacancy held by one node and taken over by another's later vacancy.
        assert await a.remove_subscription(app, "room", "c3", hold_vacancy=True) is True
        assert await b.add_subscription(app, "room", "c4", {"clientId": "c4"}) is False
        assert await b.remove_subscription(app, "room", "c4", hold_vacancy=True) is True
        assert await a.settle_vacancy(app, "room") is False
        assert await b.settle_vacancy(app, "room") is True
        assert await a.count_channels(app) == 0

    # -- presence -------------------------------------------------------------
    @pytest.mark.gen_test
    async def test_presence_is_deduplicated_per_user_across_nodes(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app = new_app()
        alice = {"id": "alice", "name": "Alice", "color": "red"}
        bob = {"id": "bob", "name": "Bob"}
        assert await a.presence_join(app, "presence-room", "tab1", alice) is True
        assert await b.presence_join(app, "presence-room", "tab2", alice) is False
        assert await b.presence_join(app, "presence-room", "tab3", bob) is True
        for node in (a, b):
            assert await node.presence_members(app, "presence-room") == [alice, bob]

        assert await a.presence_leave(app, "presence-room", "tab1", "alice") is False
        assert await b.presence_members(app, "presence-room") == [alice, bob]
        assert await b.presence_leave(app, "presence-room", "tab2", "alice") is True
        assert await a.presence_members(app, "presence-room") == [bob]
        # A leave for a connection that is not present announces nothing.
        assert await b.presence_leave(app, "presence-room", "tab2", "alice") is False
        assert await b.presence_leave(app, "presence-room", "ghost", "bob") is False
        assert await a.presence_members(app, "presence-room") == [bob]

    @pytest.mark.gen_test
    async def test_presence_join_of_a_connection_twice_counts_once(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _) = await registries.add()
        app = new_app()
        alice = {"id": "alice"}
        assert await a.presence_join(app, "presence-x", "tab1", alice) is True
        assert await a.presence_join(app, "presence-x", "tab1", alice) is False
        assert await a.presence_leave(app, "presence-x", "tab1", "alice") is True
        assert await a.presence_members(app, "presence-x") == []

    @pytest.mark.gen_test
    async def test_presence_keeps_join_order_and_app_isolation(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, _), (b, _) = [await registries.add() for _ in range(2)]
        app1, app2 = new_app(), new_app()
        users = [{"id": f"user-{i}", "name": f"U{i}"} for i in range(5)]
        for i, user in enumerate(users):
            node = (a, b)[i % 2]
            assert await node.presence_join(app1, "presence-r", f"c{i}", user)
        assert await a.presence_join(app2, "presence-r", "z", {"id": "zed"})
        assert await b.presence_members(app1, "presence-r") == users
        assert await b.presence_members(app2, "presence-r") == [{"id": "zed"}]
        assert await b.presence_members(app1, "presence-other") == []

    @pytest.mark.gen_test
    async def test_bad_arguments_raise_value_error(self, registries: Cluster[Registry]) -> None:
        (a, _) = await registries.add()
        for bad in ("", "a:b", "has space", "x" * 129, "é"):
            with pytest.raises(ValueError, match="app uuid"):
                await a.add_connection(bad, "c1")
            with pytest.raises(ValueError, match="app uuid"):
                await a.add_subscription(bad, "room", "c1", {"clientId": "c1"})
            with pytest.raises(ValueError, match="app uuid"):
                await a.presence_members(bad, "presence-x")
        with pytest.raises(ValueError, match="presence member"):
            await a.presence_join(new_app(), "presence-x", "c1", {"name": "no id"})
        with pytest.raises(ValueError, match="presence member"):
            await a.presence_join(new_app(), "presence-x", "c1", {"id": 5})

    # -- node death -------------------------------------------------------------
    @pytest.mark.gen_test(timeout=20)
    async def test_dead_node_vanishes_within_ttl_and_is_reported_once(
        self, registries: Cluster[Registry]
    ) -> None:
        ttl = self.short_ttl
        (a, ha), (b, hb), (c, _) = [await registries.add(ttl=ttl) for _ in range(3)]
        app = new_app()
        await a.add_connection(app, "ca")
        await c.add_connection(app, "cc1")
        await c.add_connection(app, "cc2")
        await a.add_subscription(app, "room", "ca", {"clientId": "ca"})
        await c.add_subscription(app, "room", "cc1", {"clientId": "cc1"})
        await c.add_subscription(app, "solo", "cc1", {"clientId": "cc1"})
        # c holds the vacancy of "held"; its vacancy of "back" was cancelled by a.
        for channel in ("held", "back"):
            await c.add_subscription(app, channel, "cc2", {"clientId": "cc2"})
            assert await c.remove_subscription(app, channel, "cc2", hold_vacancy=True)
        assert await a.add_subscription(app, "back", "ca", {"clientId": "ca"}) is False
        # alice: tabs on a and c; bob and carol: only on c (two tabs for bob).
        alice, bob, carol = {"id": "alice"}, {"id": "bob", "n": 1}, {"id": "carol"}
        await a.presence_join(app, "presence-r", "ca", alice)
        await c.presence_join(app, "presence-r", "cc1", alice)
        await c.presence_join(app, "presence-r", "cc1b", bob)
        await c.presence_join(app, "presence-r", "cc2", bob)
        await c.presence_join(app, "presence-r", "cc3", carol)
        assert await a.count_connections(app) == 3

        await registries.crash(c)

        def expired() -> list[tuple[Any, ...]]:
            return ha.of("expired") + hb.of("expired")

        def vacated() -> list[tuple[Any, ...]]:
            return ha.of("vacated") + hb.of("vacated")

        await eventually(lambda: len(expired()) >= 2, "leave reports", timeout=ttl * 4 + 2)
        await eventually(lambda: len(vacated()) >= 2, "vacated reports", timeout=ttl * 4 + 2)
        await eventually_async(
            lambda: a.count_connections(app), 1, "count drop", timeout=ttl * 4 + 2
        )
        assert await b.subscribers(app, "room") == [{"clientId": "ca"}]
        assert await b.count_subscribers(app, "solo") == 0
        assert await a.count_channels(app) == 2  # room and back
        assert await b.presence_members(app, "presence-r") == [alice]
        # Two more sweep periods: nothing is reported a second time.
        await asyncio.sleep(ttl)
        assert sorted(expired(), key=repr) == sorted(
            [("expired", app, "presence-r", bob), ("expired", app, "presence-r", carol)], key=repr
        )
        # "solo" lost its last subscriber and "held" stayed empty: each reported once,
        # on the node that reported the leaves.
        assert sorted(vacated()) == [("vacated", app, "held"), ("vacated", app, "solo")]
        assert (ha.of("vacated") and ha.of("expired")) or (hb.of("vacated") and hb.of("expired"))
        # The dead node's held vacancy is gone with it: the next subscriber is a first one.
        assert await b.add_subscription(app, "held", "cb", {"clientId": "cb"}) is True
        # Nobody holds the dead node's clients any more (so they cannot be kicked).
        assert await a.connection_node(app, "cc2") is None
        assert await b.connection_node(app, "ca") == a.node_id

    @pytest.mark.gen_test(timeout=20)
    async def test_live_nodes_keep_their_entries_past_the_ttl(
        self, registries: Cluster[Registry]
    ) -> None:
        ttl = self.short_ttl
        (a, ha), (b, hb) = [await registries.add(ttl=ttl) for _ in range(2)]
        app = new_app()
        await a.add_connection(app, "ca")
        await a.presence_join(app, "presence-r", "ca", {"id": "alice"})
        await b.add_connection(app, "cb")
        await registries.crash(b)
        # Live nodes refresh: after several TTLs their entries are all still there.
        await asyncio.sleep(ttl * 3)
        assert hb.events == []
        assert ha.of("expired") == []
        assert await a.count_connections(app) == 1
        assert await a.connection_node(app, "ca") == a.node_id
        assert await a.presence_members(app, "presence-r") == [{"id": "alice"}]

    @pytest.mark.gen_test
    async def test_graceful_stop_removes_entries_at_once_without_reports(
        self, registries: Cluster[Registry]
    ) -> None:
        (a, ha), (b, _) = [await registries.add() for _ in range(2)]
        app = new_app()
        await b.add_connection(app, "cb")
        await b.add_subscription(app, "room", "cb", {"clientId": "cb"})
        await b.presence_join(app, "presence-r", "cb", {"id": "bob"})
        await b.add_subscription(app, "held", "cb", {"clientId": "cb"})
        await b.remove_subscription(app, "held", "cb", hold_vacancy=True)
        await b.stop()
        registries.killed.append(b)  # already stopped
        assert await a.count_connections(app) == 0
        assert await a.count_subscribers(app, "room") == 0
        assert await a.presence_members(app, "presence-r") == []
        assert ha.of("expired") == []
        assert ha.of("vacated") == []
        # Its held vacancy went with it.
        assert await a.add_subscription(app, "held", "ca", {"clientId": "ca"}) is True
