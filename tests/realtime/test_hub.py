"""The hub with fake transports and the real MemoryBackplane: every decision, no sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from fazt.realtime import protocol
from fazt.realtime.backplane.memory import MemoryBackplane, MemoryBroker
from fazt.realtime.hub import Hub, HubError
from fazt.realtime.limits import Limits
from fazt.realtime.session import HeartbeatPolicy, Session
from tests.realtime.fakes import Clock, FakeTransport

SECRET = b"k" * 32
TOKENS = TokenService(SECRET)


def make_app(slug: str = "chat", uuid: str = "app_chat", **manifest: Any) -> App:
    return App(slug=slug, uuid=uuid, root=Path("/nonexistent"), manifest=dict(manifest))


class World:
    """A hub on a fresh backplane, with helpers to connect fake clients."""

    def __init__(self, hub: Hub, clock: Clock) -> None:
        self.hub = hub
        self.clock = clock
        self.notes: list[tuple[str, str | None]] = []

    async def connect(
        self, app: App, claims: dict[str, Any] | None = None
    ) -> tuple[Session, FakeTransport]:
        transport = FakeTransport()
        session = await self.hub.connect(app, transport, claims)
        return session, transport

    async def send(self, session: Session, message: Any) -> None:
        await self.hub.handle(session, json.dumps(message))


async def make_world(
    limits: Limits | None = None,
    heartbeat: HeartbeatPolicy | None = None,
    backplane: MemoryBackplane | None = None,
) -> World:
    clock = Clock()
    notes: list[tuple[str, str | None]] = []
    hub = Hub(
        backplane or MemoryBackplane(),
        TOKENS,
        limits=limits,
        heartbeat=heartbeat,
        notify=lambda name, _m, app, _d: notes.append((name, app)),
        clock=clock,
        wall_ms=lambda: 42,
    )
    await hub.backplane.start(hub)
    world = World(hub, clock)
    world.notes = notes
    return world


def claims(sub: str, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": 2_000_000_000, **extra}


@pytest.mark.gen_test
async def test_connect_subscribe_broadcast() -> None:
    w = await make_world()
    app = make_app()
    a, ta = await w.connect(app)
    b, tb = await w.connect(app, claims("bob", name="Bob"))
    assert ta.take() == [{"type": "connected", "clientId": a.client_id}]
    assert tb.take()[0]["user"] == {"id": "bob", "name": "Bob"}
    assert a.client_id != b.client_id and len(a.client_id) >= 20
    await w.send(a, {"type": "subscribe", "channel": "news"})
    assert ta.take() == [{"type": "subscribed", "channel": "news"}]
    await w.hub.broadcast(app, "news", {"n": 1})
    assert ta.take() == [{"type": "message", "channel": "news", "data": {"n": 1}, "timestamp": 42}]
    assert tb.take() == []
    assert await w.hub.count(app) == 2
    assert await w.hub.count(app, "news") == 1
    subs = await w.hub.subscribers(app, "news")
    assert subs == [{"clientId": a.client_id, "connectedAt": 42, "metadata": {}}]
    await w.send(a, {"type": "unsubscribe", "channel": "news"})
    assert ta.take() == [{"type": "unsubscribed", "channel": "news"}]
    await w.send(a, {"type": "unsubscribe", "channel": "news"})
    assert ta.take()[0]["code"] == protocol.NOT_SUBSCRIBED
    await w.hub.disconnect(a)
    await w.hub.disconnect(a)  # idempotent
    assert await w.hub.count(app) == 1


@pytest.mark.gen_test
async def test_one_frame_object_for_all_subscribers() -> None:
    w = await make_world()
    app = make_app()
    clients = [await w.connect(app) for _ in range(5)]
    for session, transport in clients:
        await w.send(session, {"type": "subscribe", "channel": "c"})
        transport.take()
    await w.hub.broadcast(app, "c", "x")
    frames = [transport.frames[0] for _, transport in clients]
    assert all(frame is frames[0] for frame in frames)  # encoded once, shared


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
    await w.hub.broadcast(one, "chat", 1)
    assert [m["data"] for m in t1.take()] == [1]
    assert t2.take() == []
    await w.hub.broadcast(two, "app_one:chat", 2)
    assert t1.take() == []
    assert await w.hub.count(one, "chat") == 1
    assert await w.hub.kick(two, s1.client_id, "x") is False
    assert t1.closed_with is None
    await w.hub.broadcast_all(two, "all")
    assert t1.take() == []
    assert t2.take() == [
        {"type": "message", "channel": "app_one:chat", "data": 2, "timestamp": 42},
        {"type": "message", "data": "all", "timestamp": 42},
    ]


@pytest.mark.gen_test
async def test_private_role_and_presence_rules() -> None:
    w = await make_world()
    app = make_app(realtime={"channels": {"admin": {"auth": True, "role": "admin"}}})
    anon, ta = await w.connect(app)
    user, tu = await w.connect(app, claims("u", role="user"))
    admin, tad = await w.connect(app, claims("a", role=["admin"]))
    for t in (ta, tu, tad):
        t.take()
    for channel in ("private-x", "presence-x", "admin"):
        await w.send(anon, {"type": "subscribe", "channel": channel})
    assert [m["code"] for m in ta.take()] == ["unauthorized"] * 3
    await w.send(user, {"type": "subscribe", "channel": "admin"})
    assert tu.take()[0]["code"] == "forbidden"
    await w.send(admin, {"type": "subscribe", "channel": "admin"})
    assert tad.take() == [{"type": "subscribed", "channel": "admin"}]
    await w.send(user, {"type": "subscribe", "channel": "private-x"})
    assert tu.take() == [{"type": "subscribed", "channel": "private-x"}]


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
    await w.hub.disconnect(tab1)
    assert tw.take() == []  # the second tab keeps alice present
    await w.send(tab2, {"type": "unsubscribe", "channel": "presence-room"})
    assert tw.take() == [
        {"type": "presence", "channel": "presence-room", "event": "leave", "client": alice}
    ]
    await w.send(tab2, {"type": "members", "channel": "presence-room"})
    assert t2.take()[-1]["code"] == "not_subscribed"


@pytest.mark.gen_test
async def test_client_publish_rules() -> None:
    w = await make_world()
    app = make_app(realtime={"channels": {"talk-*": {"publish": True}}})
    a, ta = await w.connect(app)
    b, tb = await w.connect(app)
    await w.send(a, {"type": "message", "channel": "talk-1", "data": 1})
    assert ta.take()[-1]["code"] == "not_subscribed"
    await w.send(a, {"type": "message", "channel": "quiet", "data": 1})
    assert ta.take()[-1]["code"] == "forbidden"
    for s in (a, b):
        await w.send(s, {"type": "subscribe", "channel": "talk-1"})
    ta.take()
    tb.take()
    await w.send(a, {"type": "message", "channel": "talk-1", "data": {"hi": 1}})
    assert ta.take() == []  # not echoed
    assert tb.take() == [
        {
            "type": "message",
            "channel": "talk-1",
            "data": {"hi": 1},
            "timestamp": 42,
            "from": a.client_id,
        }
    ]


@pytest.mark.gen_test
async def test_subscription_and_channel_limits_with_warning() -> None:
    w = await make_world(Limits(maxSubscriptionsPerClient=3, maxChannelsPerApp=5))
    app = make_app()
    s, t = await w.connect(app)
    for i in range(4):
        await w.send(s, {"type": "subscribe", "channel": f"c{i}"})
    assert t.take()[-1] == {
        "type": "error",
        "code": "subscription_limit",
        "error": "at most 3 subscriptions per client",
        "channel": "c3",
    }
    s2, t2 = await w.connect(app)
    for name in ("c0", "d1", "d2"):
        await w.send(s2, {"type": "subscribe", "channel": name})
    assert [m["type"] for m in t2.take()[1:]] == ["subscribed"] * 3
    s3, t3 = await w.connect(app)
    await w.send(s3, {"type": "subscribe", "channel": "d3"})
    assert t3.take()[-1]["code"] == "channel_limit"
    await w.send(s3, {"type": "subscribe", "channel": "d2"})  # existing channel: fine
    assert t3.take()[-1]["type"] == "subscribed"
    assert w.notes == [("maxChannelsPerApp", "app_chat")]  # 4/5 crossed 80% once


@pytest.mark.gen_test
async def test_app_limits_only_lower() -> None:
    w = await make_world(Limits(maxConnectionsPerApp=3))
    app = make_app(
        limits={"realtime": {"maxConnectionsPerApp": 100, "maxSubscriptionsPerClient": 1}}
    )
    assert w.hub.limits_for(app).maxConnectionsPerApp == 3
    assert w.hub.limits_for(app).maxSubscriptionsPerClient == 1
    for _ in range(3):
        assert await w.hub.admit(app)
        await w.connect(app)
    assert not await w.hub.admit(app)
    assert ("maxConnectionsPerApp", "app_chat") in w.notes


@pytest.mark.gen_test
async def test_rate_limit_drops_and_warns_once_a_second() -> None:
    w = await make_world(Limits(maxMessagesPerSecond=5))
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    for _ in range(50):
        await w.send(s, {"type": "ping"})
    replies = t.take()
    assert [m["type"] for m in replies] == ["pong"] * 5 + ["error"]
    assert replies[-1]["code"] == "rate_limited"
    w.clock.advance(1.0)
    for _ in range(50):
        await w.send(s, {"type": "ping"})
    assert [m["type"] for m in t.take()] == ["pong"] * 5 + ["error"]
    await w.hub.handle(s, '{"type":"pong"}')  # never rate limited


@pytest.mark.gen_test
async def test_flood_of_subscribes() -> None:
    w = await make_world()
    app = make_app()
    s, _t = await w.connect(app)
    other, to = await w.connect(app)
    for i in range(10_000):
        await w.send(s, {"type": "subscribe", "channel": f"flood-{i}"})
    assert len(s.subscriptions) == 20
    assert len(w.hub.app_hub(app).channels) == 20
    await w.send(other, {"type": "ping"})
    assert to.take()[-1] == {"type": "pong"}


@pytest.mark.gen_test
async def test_auth_message() -> None:
    w = await make_world()
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    await w.send(s, {"type": "auth", "token": "garbage"})
    assert t.take()[0]["code"] == "unauthorized"
    await w.send(s, {"type": "auth", "token": TOKENS.issue("ann", name="Ann", app="other")})
    assert t.take() == [
        {"type": "error", "code": "unauthorized", "error": "token is for another app"}
    ]
    await w.send(s, {"type": "auth", "token": TOKENS.issue("ann", name="Ann", app="chat")})
    assert t.take() == [{"type": "authenticated", "user": {"id": "ann", "name": "Ann"}}]
    await w.send(s, {"type": "subscribe", "channel": "private-a"})
    assert t.take()[0]["type"] == "subscribed"


@pytest.mark.gen_test
async def test_token_expiry_drops_private_keeps_public() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(100, 10, 1000))
    app = make_app()
    watcher, tw = await w.connect(app, claims("w"))
    await w.send(watcher, {"type": "subscribe", "channel": "presence-r"})
    s, t = await w.connect(app)
    now = int(__import__("time").time())
    await w.send(s, {"type": "auth", "token": TOKENS.issue("eve", ttl_seconds=5, now=now)})
    for name in ("private-a", "presence-r", "public"):
        await w.send(s, {"type": "subscribe", "channel": name})
    t.take()
    tw.take()
    w.clock.advance(6)
    w.hub.sweep()
    await w.hub.drain_tasks()
    assert t.take() == [
        {"type": "unsubscribed", "channel": "private-a", "reason": "token_expired"},
        {"type": "unsubscribed", "channel": "presence-r", "reason": "token_expired"},
        {"type": "error", "code": "unauthorized", "error": "token expired"},
    ]
    assert list(s.subscriptions) == ["public"]
    assert s.claims is None and t.closed_with is None
    assert tw.take() == [
        {"type": "presence", "channel": "presence-r", "event": "leave", "client": {"id": "eve"}}
    ]


@pytest.mark.gen_test
async def test_heartbeat_ping_pong_timeout_idle() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(10, 2, 30))
    app = make_app()
    good, tg = await w.connect(app)
    _bad, tb = await w.connect(app)
    quiet, tq = await w.connect(app)
    await w.send(quiet, {"type": "subscribe", "channel": "c"})
    for t in (tg, tb, tq):
        t.take()
    w.clock.advance(10)
    w.hub.sweep()
    assert tg.take() == [{"type": "ping"}] and tb.take() == [{"type": "ping"}]
    await w.hub.handle(good, '{"type":"pong"}')
    await w.hub.handle(quiet, '{"type":"pong"}')
    w.clock.advance(2)
    w.hub.sweep()
    assert tb.closed_with == (4201, "pong not received")
    assert tg.closed_with is None
    for _ in range(5):
        w.clock.advance(10)
        w.hub.sweep()
        for s in (good, quiet):
            await w.hub.handle(s, '{"type":"pong"}')
    assert tg.closed_with == (4202, "idle timeout")  # pongs are not activity
    assert tq.closed_with is None  # subscribed: never idle-closed


@pytest.mark.gen_test
async def test_kick_and_bad_api_arguments() -> None:
    w = await make_world(Limits(maxMessageSizeKB=1))
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    assert await w.hub.kick(app, "nobody", "x") is False
    assert await w.hub.kick(app, s.client_id, "bye") is True
    assert t.take() == [{"type": "kicked", "reason": "bye"}]
    assert t.closed_with == (4003, "kicked")
    with pytest.raises(HubError, match="over the 1024-byte limit"):
        await w.hub.broadcast(app, "c", "x" * 2000)
    with pytest.raises(HubError, match="JSON"):
        await w.hub.broadcast(app, "c", {1, 2})
    with pytest.raises(HubError, match="channel"):
        await w.hub.broadcast(app, "bad name", 1)
    with pytest.raises(HubError, match="channel"):
        await w.hub.count(app, "")


@pytest.mark.gen_test
async def test_bad_frames_get_errors_and_connection_survives() -> None:
    w = await make_world()
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    for frame in ("nope", "[1]", '{"type":"x"}', '{"type":"subscribe","channel":"a b"}'):
        await w.hub.handle(s, frame)
    assert [m["code"] for m in t.take()] == [
        "invalid_json",
        "invalid_message",
        "unknown_type",
        "invalid_channel",
    ]
    await w.send(s, {"type": "ping"})
    assert t.take() == [{"type": "pong"}]


@pytest.mark.gen_test
async def test_cluster_of_two_hubs() -> None:
    broker = MemoryBroker()
    w1 = await make_world(backplane=MemoryBackplane(broker, "n1"))
    w2 = await make_world(backplane=MemoryBackplane(broker, "n2"))
    app = make_app()
    s1, t1 = await w1.connect(app, claims("al"))
    s2, t2 = await w2.connect(app, claims("al"))
    for w, s in ((w1, s1), (w2, s2)):
        await w.send(s, {"type": "subscribe", "channel": "presence-c"})
    t1.take()
    t2.take()
    await w1.hub.broadcast(app, "presence-c", "hi")
    await __import__("asyncio").sleep(0)
    assert [m["data"] for m in t1.take()] == ["hi"]
    assert [m["data"] for m in t2.take()] == ["hi"]
    assert await w1.hub.count(app) == 2
    assert await w2.hub.kick(app, s1.client_id, "r") is True
    await __import__("asyncio").sleep(0)
    assert t1.closed_with == (4003, "kicked")
    for w in (w1, w2):
        await w.hub.backplane.stop()


@pytest.mark.gen_test
async def test_crashed_node_members_leave_once() -> None:
    broker = MemoryBroker()
    w1 = await make_world(backplane=MemoryBackplane(broker, "n1", presence_ttl_seconds=0.06))
    w2 = await make_world(backplane=MemoryBackplane(broker, "n2", presence_ttl_seconds=0.06))
    app = make_app()
    watcher, tw = await w1.connect(app, claims("wat"))
    ghost, _ = await w2.connect(app, claims("ghost", name="Ghost"))
    await w1.send(watcher, {"type": "subscribe", "channel": "presence-room"})
    await w2.send(ghost, {"type": "subscribe", "channel": "presence-room"})
    await asyncio.sleep(0)
    assert tw.take()[-1]["event"] == "join"
    backplane2 = w2.hub.backplane
    assert isinstance(backplane2, MemoryBackplane)
    backplane2.crash()  # kill -9 of node 2: its members must leave within the TTL
    for _ in range(100):
        if tw.frames:
            break
        await asyncio.sleep(0.01)
    await w1.hub.drain_tasks()
    assert tw.take() == [
        {
            "type": "presence",
            "channel": "presence-room",
            "event": "leave",
            "client": {"id": "ghost", "name": "Ghost"},
        }
    ]
    members = await w1.hub.backplane.presence_members(app.uuid, "presence-room")
    assert members == [{"id": "wat"}]
    await w1.hub.backplane.stop()


class _BrokenRegistry(MemoryBackplane):
    """A backplane whose registry calls fail, as with Redis unreachable."""

    async def count_connections(self, app_uuid: str | None = None) -> int:
        raise ConnectionError("registry down")

    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> None:
        raise ConnectionError("registry down")


@pytest.mark.gen_test
async def test_backplane_failures_do_not_cost_connections(caplog: pytest.LogCaptureFixture) -> None:
    w = await make_world(backplane=_BrokenRegistry())
    app = make_app()
    assert await w.hub.admit(app)  # falls back to local counts
    s, t = await w.connect(app)
    t.take()
    await w.send(s, {"type": "subscribe", "channel": "c"})
    assert t.closed_with is None
    await w.send(s, {"type": "ping"})
    assert t.take()[-1] == {"type": "pong"}
    assert any("failed to handle a Subscribe message" in r.message for r in caplog.records)


class _SlowRegistry(MemoryBackplane):
    """Registry calls that yield to the loop, as Redis round trips do."""

    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        await asyncio.sleep(0.01)
        return await super().count_subscribers(app_uuid, channel)

    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> None:
        await asyncio.sleep(0.01)
        await super().add_subscription(app_uuid, channel, client_id, info)


@pytest.mark.gen_test
async def test_disconnect_racing_a_subscribe_leaves_nothing_behind() -> None:
    w = await make_world(backplane=_SlowRegistry())
    app = make_app()
    for delay in (0.0, 0.005, 0.015, 0.03):
        s, _t = await w.connect(app, claims("racer"))
        subscribing = asyncio.ensure_future(
            w.send(s, {"type": "subscribe", "channel": "presence-race"})
        )
        await asyncio.sleep(delay)
        await w.hub.disconnect(s)
        await subscribing
        await w.hub.drain_tasks()
        assert await w.hub.count(app, "presence-race") == 0, delay
        assert await w.hub.backplane.presence_members(app.uuid, "presence-race") == []
        assert "presence-race" not in w.hub.app_hub(app).channels
    assert await w.hub.count(app) == 0
