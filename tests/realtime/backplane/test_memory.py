"""The three conformance suites on the in-memory backplane, plus its single-node mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tornado.ioloop

from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.bus_memory import MemoryBroker, MemoryBus
from fazt.realtime.backplane.history import HistoryStore
from fazt.realtime.backplane.history_memory import MemoryHistoryData, MemoryHistoryStore
from fazt.realtime.backplane.node import Backplane, MemoryNetwork, memory_backplane
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.backplane.registry_memory import MemoryRegistry, MemoryRegistryStore
from tests.realtime.backplane.bus_conformance import BusConformance
from tests.realtime.backplane.history_conformance import HistoryConformance, HistoryNodes
from tests.realtime.backplane.history_conformance import run_close as close_history
from tests.realtime.backplane.registry_conformance import RegistryConformance
from tests.realtime.backplane.support import (
    Cluster,
    RecordingHandler,
    eventually,
    new_app,
    run_close,
)
from tests.realtime.fakes import Clock


class MemoryBuses(Cluster[Bus]):
    def __init__(self) -> None:
        super().__init__()
        self.broker = MemoryBroker()

    def make(self, ttl: float) -> Bus:
        return MemoryBus(self.broker)

    async def kill(self, part: Bus) -> None:
        assert isinstance(part, MemoryBus)
        part.crash()


class MemoryRegistries(Cluster[Registry]):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryRegistryStore()

    def make(self, ttl: float) -> Registry:
        return MemoryRegistry(self.store, presence_ttl_seconds=ttl)

    async def kill(self, part: Registry) -> None:
        assert isinstance(part, MemoryRegistry)
        part.crash()


class MemoryHistories(HistoryNodes):
    def __init__(self) -> None:
        super().__init__()
        self.broker = MemoryBroker()
        self.clock = Clock()
        self.data = MemoryHistoryData(self.clock)

    def make(self) -> tuple[Bus, HistoryStore]:
        bus = MemoryBus(self.broker)
        return bus, MemoryHistoryStore(bus, self.data)

    async def age(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def lose(self) -> None:
        self.data.clear()


class TestMemoryHistory(HistoryConformance):
    @pytest.fixture
    def streams(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[HistoryNodes]:
        nodes = MemoryHistories()
        yield nodes
        close_history(io_loop, nodes)


class TestMemoryBus(BusConformance):
    @pytest.fixture
    def buses(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[Cluster[Bus]]:
        cluster = MemoryBuses()
        yield cluster
        run_close(io_loop, cluster)


class TestMemoryRegistry(RegistryConformance):
    @pytest.fixture
    def registries(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[Cluster[Registry]]:
        cluster = MemoryRegistries()
        yield cluster
        run_close(io_loop, cluster)


@pytest.mark.gen_test
async def test_a_lone_node_answers_locally_and_publishes_to_nobody() -> None:
    node = memory_backplane()
    handler = RecordingHandler()
    await node.start(handler, handler)
    app = new_app()
    await node.bus.subscribe_channel(app, "room")
    await node.bus.watch_app(app)
    await node.bus.publish_channel(app, "room", b"{}")
    await node.bus.publish_app(app, b"{}")
    await node.registry.add_connection(app, "c1")
    assert await node.registry.count_connections(app) == 1
    assert await node.registry.connection_node(app, "c1") == node.node_id
    assert await node.registry.presence_join(app, "presence-r", "c1", {"id": "u"}) is True
    assert await node.bus.send_kick(app, node.node_id, "c1", "bye") is True
    assert await node.registry.connection_node(app, "c2") is None
    await eventually(lambda: bool(handler.events), "the kick")
    await node.stop()
    # Only the kick of its own client reached the handler: no echo of publishes.
    assert handler.events == [("kick", app, "c1", "bye")]


def test_node_ids_are_checked_and_unique_per_medium() -> None:
    with pytest.raises(ValueError, match="node id"):
        MemoryBus(node_id="bad:id")
    with pytest.raises(ValueError, match="node id"):
        MemoryRegistry(node_id="bad:id")
    with pytest.raises(ValueError, match="node id"):
        memory_backplane(node_id="bad:id")
    with pytest.raises(ValueError, match="presence_ttl_seconds"):
        MemoryRegistry(presence_ttl_seconds=0)
    assert memory_backplane().node_id != memory_backplane().node_id
    network = MemoryNetwork()
    node = memory_backplane(network, "n1")
    assert node.bus.node_id == node.registry.node_id == "n1"
    with pytest.raises(ValueError, match="share its node id"):
        bus = MemoryBus(node_id="one")
        Backplane(bus, MemoryRegistry(node_id="two"), MemoryHistoryStore(bus))


@pytest.mark.gen_test
async def test_two_nodes_with_one_id_on_a_medium_are_refused() -> None:
    broker, store = MemoryBroker(), MemoryRegistryStore()
    first_bus, first_registry = MemoryBus(broker, "same"), MemoryRegistry(store, "same")
    await first_bus.start(RecordingHandler())
    await first_registry.start(RecordingHandler())
    with pytest.raises(ValueError, match="already used"):
        await MemoryBus(broker, node_id="same").start(RecordingHandler())
    with pytest.raises(ValueError, match="already used"):
        await MemoryRegistry(store, node_id="same").start(RecordingHandler())
    await first_bus.stop()
    await first_registry.stop()


@pytest.mark.gen_test
async def test_a_failed_bus_start_leaves_the_registry_stopped() -> None:
    network = MemoryNetwork()
    taken = MemoryBus(network.broker, "taken")
    await taken.start(RecordingHandler())
    node = memory_backplane(network, "taken")
    handler = RecordingHandler()
    with pytest.raises(ValueError, match="already used"):
        await node.start(handler, handler)
    # The registry joined first and left again: a fresh registry may take the id.
    again = MemoryRegistry(network.store, "taken")
    await again.start(RecordingHandler())
    await again.stop()
    await taken.stop()


@pytest.mark.gen_test
async def test_subscriber_info_of_any_shape_round_trips_as_private_copies() -> None:
    """Hub-shaped info is stored packed; any other shape whole; callers get copies."""
    app = new_app()
    registry = MemoryRegistry()
    await registry.start(RecordingHandler())
    try:
        hub_shaped = {"clientId": "c1", "connectedAt": 5, "metadata": {"roles": ["a"]}}
        other = {"clientId": "c2", "connectedAt": 6, "metadata": {}, "extra": [1]}
        mismatched = {"clientId": "not-c3", "connectedAt": 7, "metadata": {}}
        await registry.add_subscription(app, "room", "c1", hub_shaped)
        await registry.add_subscription(app, "room", "c2", other)
        await registry.add_subscription(app, "room", "c3", mismatched)
        hub_shaped["metadata"]["roles"].append("mutated after the call")
        found = await registry.subscribers(app, "room")
        assert found == [
            {"clientId": "c1", "connectedAt": 5, "metadata": {"roles": ["a"]}},
            {"clientId": "c2", "connectedAt": 6, "metadata": {}, "extra": [1]},
            {"clientId": "not-c3", "connectedAt": 7, "metadata": {}},
        ]
        for info in found:
            info["metadata"]["x"] = 1  # callers may mutate what they got
        again = await registry.subscribers(app, "room")
        assert all("x" not in info["metadata"] for info in again)
    finally:
        await registry.stop()
