"""Joins and leaves: presence per user, node death, and races with disconnects. No sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.history_memory import MemoryHistoryStore
from fazt.realtime.backplane.node import Backplane, MemoryNetwork, memory_backplane
from fazt.realtime.backplane.registry_memory import MemoryRegistry
from tests.realtime.world import claims, make_app, make_world


@pytest.mark.gen_test
async def test_presence_two_tabs_one_member() -> None:
    w = await make_world()
    app = make_app()
    watcher, tw = await w.connect(app, claims("w", name="W"))
    tw.take()
    await w.send(watcher, {"type": "subscribe", "channel": "presence-room"})
    assert tw.take() == [
        {"type": "subscribed", "channel": "presence-room", "members": [{"id": "w", "name": "W"}]}
    ]
    tab1, t1 = await w.connect(app, claims("alice", name="Alice", info={"color": "red"}))
    tab2, t2 = await w.connect(app, claims("alice", name="Alice", info={"color": "red"}))
    await w.send(tab1, {"type": "subscribe", "channel": "presence-room"})
    await w.send(tab2, {"type": "subscribe", "channel": "presence-room"})
    alice = {"id": "alice", "name": "Alice", "color": "red"}
    assert tw.take() == [
        {"type": "presence", "channel": "presence-room", "event": "join", "client": alice}
    ]
    t1.take()
    assert t2.take()[-1]["members"] == [{"id": "w", "name": "W"}, alice]
    await w.send(tab2, {"type": "members", "channel": "presence-room"})
    assert t2.take() == [
        {
            "type": "members",
            "channel": "presence-room",
            "members": [{"id": "w", "name": "W"}, alice],
        }
    ]
    await w.disconnect(tab1)
    assert tw.take() == []  # the second tab keeps alice present
    await w.send(tab2, {"type": "unsubscribe", "channel": "presence-room"})
    assert tw.take() == [
        {"type": "presence", "channel": "presence-room", "event": "leave", "client": alice}
    ]
    await w.send(tab2, {"type": "members", "channel": "presence-room"})
    assert t2.take()[-1]["code"] == "not_subscribed"


@pytest.mark.gen_test
async def test_crashed_node_members_leave_once() -> None:
    network = MemoryNetwork()
    w1 = await make_world(backplane=memory_backplane(network, "n1", presence_ttl_seconds=0.06))
    w2 = await make_world(backplane=memory_backplane(network, "n2", presence_ttl_seconds=0.06))
    app = make_app()
    watcher, tw = await w1.connect(app, claims("wat"))
    ghost, _ = await w2.connect(app, claims("ghost", name="Ghost"))
    await w1.send(watcher, {"type": "subscribe", "channel": "presence-room"})
    await w2.send(ghost, {"type": "subscribe", "channel": "presence-room"})
    await asyncio.sleep(0)
    assert tw.take()[-1]["event"] == "join"
    backplane2 = w2.core.backplane
    assert isinstance(backplane2.bus, MemoryBus)
    assert isinstance(backplane2.registry, MemoryRegistry)
    # kill -9 of node 2: its members must leave within the TTL.
    backplane2.bus.crash()
    backplane2.registry.crash()
    for _ in range(100):
        if tw.frames:
            break
        await asyncio.sleep(0.01)
    await w1.core.tasks.drain()
    assert tw.take() == [
        {
            "type": "presence",
            "channel": "presence-room",
            "event": "leave",
            "client": {"id": "ghost", "name": "Ghost"},
        }
    ]
    members = await w1.core.backplane.registry.presence_members(app.uuid, "presence-room")
    assert members == [{"id": "wat"}]
    await w1.core.backplane.stop()


class _SlowRegistry(MemoryRegistry):
    """Registry calls that yield to the loop, as Redis round trips do."""

    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        await asyncio.sleep(0.01)
        return await super().count_subscribers(app_uuid, channel)

    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> bool:
        await asyncio.sleep(0.01)
        return await super().add_subscription(app_uuid, channel, client_id, info)


@pytest.mark.gen_test
async def test_disconnect_racing_a_subscribe_leaves_nothing_behind() -> None:
    bus = MemoryBus(node_id="n1")
    backplane = Backplane(bus, _SlowRegistry(node_id="n1"), MemoryHistoryStore(bus))
    w = await make_world(backplane=backplane)
    app = make_app()
    api = w.core.api(app)
    for delay in (0.0, 0.005, 0.015, 0.03):
        s, _t = await w.connect(app, claims("racer"))
        subscribing = asyncio.ensure_future(
            w.send(s, {"type": "subscribe", "channel": "presence-race"})
        )
        await asyncio.sleep(delay)
        await w.disconnect(s)
        await subscribing
        await w.core.tasks.drain()
        assert await api.count("presence-race") == 0, delay
        assert await backplane.registry.presence_members(app.uuid, "presence-race") == []
        assert "presence-race" not in w.hub.app_state(app).channels
    assert await api.count() == 0
