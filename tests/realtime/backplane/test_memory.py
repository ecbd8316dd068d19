"""The conformance suite on the in-memory backplane, plus its single-node mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tornado.ioloop

from fazt.realtime.backplane.base import Backplane
from fazt.realtime.backplane.memory import MemoryBackplane, MemoryBroker
from tests.realtime.backplane.conformance import (
    BackplaneConformance,
    Cluster,
    Node,
    RecordingHandler,
    eventually,
    new_app,
    run_close,
)


class MemoryCluster(Cluster):
    def __init__(self) -> None:
        super().__init__()
        self.broker = MemoryBroker()

    def make(self, ttl: float) -> Backplane:
        return MemoryBackplane(self.broker, presence_ttl_seconds=ttl)

    async def kill(self, node: Node) -> None:
        assert isinstance(node.backplane, MemoryBackplane)
        node.backplane.crash()


class TestMemoryBackplane(BackplaneConformance):
    @pytest.fixture
    def cluster(self, io_loop: tornado.ioloop.IOLoop) -> Iterator[Cluster]:
        cluster = MemoryCluster()
        yield cluster
        run_close(io_loop, cluster)


@pytest.mark.gen_test
async def test_a_lone_node_answers_locally_and_publishes_to_nobody() -> None:
    node = MemoryBackplane()
    handler = RecordingHandler()
    await node.start(handler)
    app = new_app()
    await node.subscribe_channel(app, "room")
    await node.watch_app(app)
    await node.publish_channel(app, "room", b"{}")
    await node.publish_app(app, b"{}")
    await node.add_connection(app, "c1")
    assert await node.count_connections(app) == 1
    assert await node.presence_join(app, "presence-r", "c1", {"id": "u"}) is True
    assert await node.send_kick(app, "c1", "bye") is True
    assert await node.send_kick(app, "c2", "bye") is False
    await eventually(lambda: bool(handler.events), "the kick")
    await node.stop()
    # Only the kick of its own client reached the handler: no echo of publishes.
    assert handler.events == [("kick", app, "c1", "bye")]


def test_node_ids_are_checked_and_unique_per_broker() -> None:
    with pytest.raises(ValueError, match="node id"):
        MemoryBackplane(node_id="bad:id")
    with pytest.raises(ValueError, match="presence_ttl_seconds"):
        MemoryBackplane(presence_ttl_seconds=0)
    assert MemoryBackplane().node_id != MemoryBackplane().node_id


@pytest.mark.gen_test
async def test_two_nodes_with_one_id_on_a_broker_are_refused() -> None:
    broker = MemoryBroker()
    first = MemoryBackplane(broker, node_id="same")
    await first.start(RecordingHandler())
    with pytest.raises(ValueError, match="already used"):
        await MemoryBackplane(broker, node_id="same").start(RecordingHandler())
    await first.stop()


@pytest.mark.gen_test
async def test_subscriber_info_of_any_shape_round_trips_as_private_copies() -> None:
    """Hub-shaped info is stored packed; any other shape whole; callers get copies."""
    app = new_app()
    backplane = MemoryBackplane()
    await backplane.start(RecordingHandler())
    try:
        hub_shaped = {"clientId": "c1", "connectedAt": 5, "metadata": {"roles": ["a"]}}
        other = {"clientId": "c2", "connectedAt": 6, "metadata": {}, "extra": [1]}
        mismatched = {"clientId": "not-c3", "connectedAt": 7, "metadata": {}}
        await backplane.add_subscription(app, "room", "c1", hub_shaped)
        await backplane.add_subscription(app, "room", "c2", other)
        await backplane.add_subscription(app, "room", "c3", mismatched)
        hub_shaped["metadata"]["roles"].append("mutated after the call")
        found = await backplane.subscribers(app, "room")
        assert found == [
            {"clientId": "c1", "connectedAt": 5, "metadata": {"roles": ["a"]}},
            {"clientId": "c2", "connectedAt": 6, "metadata": {}, "extra": [1]},
            {"clientId": "not-c3", "connectedAt": 7, "metadata": {}},
        ]
        for info in found:
            info["metadata"]["x"] = 1  # callers may mutate what they got
        again = await backplane.subscribers(app, "room")
        assert all("x" not in info["metadata"] for info in again)
    finally:
        await backplane.stop()
