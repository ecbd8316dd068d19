"""The hub: the registry of apps and channels, admission, and the one fan-out. No sockets."""

from __future__ import annotations

import asyncio

import pytest

from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.node import MemoryNetwork, memory_backplane
from fazt.realtime.hub import Hub
from fazt.realtime.limits import Limits
from fazt.realtime.protocol import text_frame
from fazt.realtime.session import Session
from tests.realtime.fakes import FakeTransport, fake_session
from tests.realtime.world import claims, make_app, make_world


def _sessions(count: int) -> tuple[dict[str, Session], list[FakeTransport]]:
    made = [fake_session(f"c{i}") for i in range(count)]
    return {session.client_id: session for session, _ in made}, [t for _, t in made]


def test_fan_out_writes_one_shared_frame_to_all_but_the_excluded() -> None:
    sessions, transports = _sessions(4)
    frame = text_frame(b'{"n":1}')
    Hub.fan_out(sessions, frame)
    assert all(t.frames == [frame] and t.frames[0] is frame for t in transports)
    Hub.fan_out(sessions, frame, exclude="c2")
    assert [len(t.frames) for t in transports] == [2, 2, 1, 2]


@pytest.mark.gen_test
async def test_a_broadcast_is_one_frame_object_for_all_subscribers() -> None:
    w = await make_world()
    app = make_app()
    clients = [await w.connect(app) for _ in range(5)]
    for session, transport in clients:
        await w.send(session, {"type": "subscribe", "channel": "c"})
        transport.take()
    await w.core.api(app).broadcast("c", "x")
    frames = [transport.frames[0] for _, transport in clients]
    assert all(frame is frames[0] for frame in frames)  # encoded once, shared


@pytest.mark.gen_test
async def test_a_broadcast_reaches_subscribers_only() -> None:
    w = await make_world()
    app = make_app()
    a, ta = await w.connect(app)
    _b, tb = await w.connect(app, claims("bob", name="Bob"))
    await w.send(a, {"type": "subscribe", "channel": "news"})
    ta.take()
    tb.take()
    await w.core.api(app).broadcast("news", {"n": 1})
    assert ta.take() == [{"type": "message", "channel": "news", "data": {"n": 1}, "timestamp": 42}]
    assert tb.take() == []


@pytest.mark.gen_test
async def test_apps_are_isolated() -> None:
    w = await make_world()
    one, two = make_app("one", "app_one"), make_app("two", "app_two")
    s1, t1 = await w.connect(one)
    s2, t2 = await w.connect(two)
    for session, name in ((s1, "chat"), (s2, "chat"), (s2, "app_one:chat")):
        await w.send(session, {"type": "subscribe", "channel": name})
    t1.take()
    t2.take()
    await w.core.api(one).broadcast("chat", 1)
    assert [m["data"] for m in t1.take()] == [1]
    assert t2.take() == []
    await w.core.api(two).broadcast("app_one:chat", 2)
    assert t1.take() == []
    assert await w.core.api(one).count("chat") == 1
    assert await w.core.api(two).kick(s1.client_id, "x") is False
    assert t1.closed_with is None
    await w.core.api(two).broadcast_all("all")
    assert t1.take() == []
    assert t2.take() == [
        {"type": "message", "channel": "app_one:chat", "data": 2, "timestamp": 42},
        {"type": "message", "data": "all", "timestamp": 42},
    ]


@pytest.mark.gen_test
async def test_app_limits_only_lower_and_admission_refuses_at_the_limit() -> None:
    w = await make_world(Limits(maxConnectionsPerApp=3))
    app = make_app(
        limits={"realtime": {"maxConnectionsPerApp": 100, "maxSubscriptionsPerClient": 1}}
    )
    assert w.hub.limits_for(app).maxConnectionsPerApp == 3
    assert w.hub.limits_for(app).maxSubscriptionsPerClient == 1
    for _ in range(3):
        assert await w.core.admission.admit(app)
        await w.connect(app)
    assert not await w.core.admission.admit(app)
    assert ("maxConnectionsPerApp", "app_chat") in w.notes


@pytest.mark.gen_test
async def test_a_closing_node_admits_nobody() -> None:
    w = await make_world()
    app = make_app()
    assert await w.core.admission.admit(app)
    w.core.admission.closing = True
    assert not await w.core.admission.admit(app)


@pytest.mark.gen_test
async def test_a_channel_is_received_from_the_bus_while_occupied_here() -> None:
    network = MemoryNetwork()
    w1 = await make_world(backplane=memory_backplane(network, "n1"))
    w2 = await make_world(backplane=memory_backplane(network, "n2"))
    app = make_app()
    s1, t1 = await w1.connect(app)
    s2, _ = await w1.connect(app)
    bus = w1.core.backplane.bus
    assert isinstance(bus, MemoryBus)
    receivers = network.broker.channel_receivers

    def receiving() -> bool:
        return [node.node_id for node in receivers("n2", app.uuid, "room")] == ["n1"]

    assert not receiving()
    await w1.send(s1, {"type": "subscribe", "channel": "room"})
    assert receiving()  # occupied: the first local subscriber
    await w1.send(s2, {"type": "subscribe", "channel": "room"})
    await w1.send(s1, {"type": "unsubscribe", "channel": "room"})
    assert receiving()  # one subscriber left here
    await w1.disconnect(s2)
    assert not receiving()  # vacated: the last one left
    t1.take()
    await w2.core.api(app).broadcast("room", "nobody here")
    await asyncio.sleep(0)
    assert t1.take() == []
    for w in (w1, w2):
        await w.core.backplane.stop()


@pytest.mark.gen_test
async def test_cluster_of_two_hubs() -> None:
    network = MemoryNetwork()
    w1 = await make_world(backplane=memory_backplane(network, "n1"))
    w2 = await make_world(backplane=memory_backplane(network, "n2"))
    app = make_app()
    s1, t1 = await w1.connect(app, claims("al"))
    s2, t2 = await w2.connect(app, claims("al"))
    for w, s in ((w1, s1), (w2, s2)):
        await w.send(s, {"type": "subscribe", "channel": "presence-c"})
    t1.take()
    t2.take()
    await w1.core.api(app).broadcast("presence-c", "hi")
    await asyncio.sleep(0)
    assert [m["data"] for m in t1.take()] == ["hi"]
    assert [m["data"] for m in t2.take()] == ["hi"]
    assert await w1.core.api(app).count() == 2
    assert await w2.core.api(app).kick(s1.client_id, "r") is True
    await asyncio.sleep(0)
    assert t1.closed_with == (4003, "kicked")
    for w in (w1, w2):
        await w.core.backplane.stop()
