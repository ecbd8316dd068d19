"""One connection's requests against a real core on the in-memory backplane. No sockets."""

from __future__ import annotations

from typing import Any

import pytest

from fazt.realtime import protocol
from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.history_memory import MemoryHistoryStore
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.backplane.registry_memory import MemoryRegistry
from fazt.realtime.limits import Limits
from tests.realtime.world import TOKENS, claims, make_app, make_world


# -- connect, subscribe, unsubscribe, disconnect ---------------------------------------
@pytest.mark.gen_test
async def test_connected_greets_each_connection_with_its_own_client_id() -> None:
    w = await make_world()
    app = make_app()
    a, ta = await w.connect(app)
    b, _ = await w.connect(app)
    assert ta.take() == [{"type": "connected", "clientId": a.client_id}]
    assert a.client_id != b.client_id and len(a.client_id) >= 20


@pytest.mark.gen_test
async def test_connected_carries_the_user_of_a_token() -> None:
    w = await make_world()
    b, tb = await w.connect(make_app(), claims("bob", name="Bob"))
    assert tb.take() == [
        {"type": "connected", "clientId": b.client_id, "user": {"id": "bob", "name": "Bob"}}
    ]


@pytest.mark.gen_test
async def test_subscribe_answers_subscribed() -> None:
    w = await make_world()
    a, ta = await w.connect(make_app())
    ta.take()
    await w.send(a, {"type": "subscribe", "channel": "news"})
    assert ta.take() == [{"type": "subscribed", "channel": "news"}]
    await w.send(a, {"type": "subscribe", "channel": "news"})  # idempotent
    assert ta.take() == [{"type": "subscribed", "channel": "news"}]
    assert list(a.subscriptions) == ["news"]


@pytest.mark.gen_test
async def test_unsubscribe_answers_unsubscribed_and_stops_delivery() -> None:
    w = await make_world()
    app = make_app()
    a, ta = await w.connect(app)
    await w.send(a, {"type": "subscribe", "channel": "news"})
    ta.take()
    await w.send(a, {"type": "unsubscribe", "channel": "news"})
    assert ta.take() == [{"type": "unsubscribed", "channel": "news"}]
    await w.core.api(app).broadcast("news", 1)
    assert ta.take() == []


@pytest.mark.gen_test
async def test_unsubscribe_without_a_subscription_is_not_subscribed() -> None:
    w = await make_world()
    a, ta = await w.connect(make_app())
    ta.take()
    await w.send(a, {"type": "unsubscribe", "channel": "news"})
    assert ta.take() == [
        {
            "type": "error",
            "code": protocol.NOT_SUBSCRIBED,
            "error": "you are not subscribed to this channel",
            "channel": "news",
        }
    ]


@pytest.mark.gen_test
async def test_disconnect_forgets_the_connection_once() -> None:
    w = await make_world()
    app = make_app()
    a, _ = await w.connect(app)
    await w.connect(app)
    await w.send(a, {"type": "subscribe", "channel": "news"})
    assert await w.core.api(app).count() == 2
    await w.disconnect(a)
    await w.disconnect(a)  # idempotent
    assert await w.core.api(app).count() == 1
    assert await w.core.api(app).count("news") == 0
    assert w.hub.session(app.uuid, a.client_id) is None and a.closed


# -- rules, roles, presence ------------------------------------------------------------
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
async def test_auth_as_another_user_drops_what_the_old_identity_was_granted() -> None:
    w = await make_world()
    app = make_app()
    s, t = await w.connect(app, claims("ann"))
    for name in ("private-a", "public"):
        await w.send(s, {"type": "subscribe", "channel": name})
    t.take()
    await w.send(s, {"type": "auth", "token": TOKENS.issue("bob", app="chat")})
    assert t.take() == [
        {"type": "unsubscribed", "channel": "private-a", "reason": "reauthenticated"},
        {"type": "authenticated", "user": {"id": "bob"}},
    ]
    assert list(s.subscriptions) == ["public"]


# -- limits ------------------------------------------------------------------------------
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
    # One crossing each: the first client's 3/3 subscriptions (warning) and its refused
    # fourth (rejection), the channels' 4/5 (warning), the second client's 3/3, then
    # the refused sixth channel (rejection). The refused subscribes count no more.
    assert w.notes == [
        ("maxSubscriptionsPerClient", "app_chat"),
        ("maxSubscriptionsPerClient", "app_chat"),
        ("maxChannelsPerApp", "app_chat"),
        ("maxSubscriptionsPerClient", "app_chat"),
        ("maxChannelsPerApp", "app_chat"),
    ]
    await w.send(s, {"type": "subscribe", "channel": "c3"})  # refused again: no new crossing
    assert len(w.notes) == 5


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
    await w.handle(s, '{"type":"pong"}')  # never rate limited
    assert t.take() == []


@pytest.mark.gen_test
async def test_flood_of_subscribes() -> None:
    # A channel budget above the subscription limit: the latter is what a flood meets.
    w = await make_world(Limits(maxChannelsCreatedPerClient=100))
    app = make_app()
    s, _t = await w.connect(app)
    other, to = await w.connect(app)
    for i in range(10_000):
        await w.send(s, {"type": "subscribe", "channel": f"flood-{i}"})
    assert len(s.subscriptions) == 20
    assert len(w.hub.app_state(app).channels) == 20
    await w.send(other, {"type": "ping"})
    assert to.take()[-1] == {"type": "pong"}


# -- bad input and failures ----------------------------------------------------------------
@pytest.mark.gen_test
async def test_bad_frames_get_errors_and_connection_survives() -> None:
    w = await make_world()
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    for frame in ("nope", "[1]", '{"type":"x"}', '{"type":"subscribe","channel":"a b"}'):
        await w.handle(s, frame)
    assert [m["code"] for m in t.take()] == [
        "invalid_json",
        "invalid_message",
        "unknown_type",
        "invalid_channel",
    ]
    await w.send(s, {"type": "ping"})
    assert t.take() == [{"type": "pong"}]


class _BrokenRegistry(MemoryRegistry):
    """A registry whose subscription writes fail, as a bug in a backend would."""

    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> None:
        raise ConnectionError("registry down")


@pytest.mark.gen_test
async def test_a_failing_registry_call_does_not_cost_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MemoryBus(node_id="n1")
    registry = _BrokenRegistry(node_id="n1")
    w = await make_world(backplane=Backplane(bus, registry, MemoryHistoryStore(bus)))
    app = make_app()
    s, t = await w.connect(app)
    t.take()
    await w.send(s, {"type": "subscribe", "channel": "c"})
    assert t.closed_with is None
    await w.send(s, {"type": "ping"})
    assert t.take()[-1] == {"type": "pong"}
    assert any("while handling a Subscribe message" in r.message for r in caplog.records)
