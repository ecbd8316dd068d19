"""``maxChannelsCreatedPerClient``: how many new channels one connection may hold.

The budget counts the connection's current subscriptions that created their
channel (it was the first subscriber, cluster-wide); an unsubscribe gives the
budget back; over it a subscribe gets ``channel_limit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fazt.realtime.limits import Limits
from tests.realtime.world import make_app, make_world
from tests.realtime.wsclient import realtime_kernel

APP = make_app()


def subscribe(channel: str) -> dict[str, str]:
    return {"type": "subscribe", "channel": channel}


@pytest.mark.gen_test
async def test_the_budget_counts_channels_created_and_an_unsubscribe_returns_it() -> None:
    w = await make_world()
    assert Limits().maxChannelsCreatedPerClient == 10
    s, t = await w.connect(APP)
    for i in range(11):
        await w.send(s, subscribe(f"new-{i}"))
    replies = t.take()[1:]
    assert [m["type"] for m in replies] == ["subscribed"] * 10 + ["error"]
    assert replies[-1] == {
        "type": "error",
        "code": "channel_limit",
        "error": "at most 10 new channels per client: leave one you created first",
        "channel": "new-10",
    }
    # Joining channels others created costs nothing.
    other, _ = await w.connect(APP)
    for i in range(3):
        await w.send(other, subscribe(f"theirs-{i}"))
        await w.send(s, subscribe(f"theirs-{i}"))
    assert [m["type"] for m in t.take()] == ["subscribed"] * 3
    # Leaving a channel it created gives one back.
    await w.send(s, {"type": "unsubscribe", "channel": "new-0"})
    await w.send(s, subscribe("new-10"))
    await w.send(s, subscribe("new-11"))
    assert [m.get("code", m["type"]) for m in t.take()] == [
        "unsubscribed",
        "subscribed",
        "channel_limit",
    ]


@pytest.mark.gen_test
async def test_a_channel_rejoined_after_someone_else_created_it_is_not_counted() -> None:
    w = await make_world(Limits(maxChannelsCreatedPerClient=2))
    s, t = await w.connect(APP)
    other, _ = await w.connect(APP)
    await w.send(s, subscribe("a"))  # created by s
    await w.send(s, {"type": "unsubscribe", "channel": "a"})
    await w.send(other, subscribe("a"))  # now created by other
    await w.send(s, subscribe("a"))  # joins: not s's creation any more
    await w.send(s, subscribe("b"))
    await w.send(s, subscribe("c"))
    assert [m.get("code", m["type"]) for m in t.take()[1:]] == [
        "subscribed",
        "unsubscribed",
        "subscribed",
        "subscribed",
        "subscribed",
    ]
    await w.send(s, subscribe("d"))
    assert t.take()[-1]["code"] == "channel_limit"


@pytest.mark.gen_test
async def test_an_app_may_lower_the_budget_never_raise_it() -> None:
    w = await make_world(Limits(maxChannelsCreatedPerClient=5))
    lower = make_app(limits={"realtime": {"maxChannelsCreatedPerClient": 2}})
    higher = make_app(
        slug="big", uuid="app_big", limits={"realtime": {"maxChannelsCreatedPerClient": 50}}
    )
    assert w.hub.limits_for(lower).maxChannelsCreatedPerClient == 2
    assert w.hub.limits_for(higher).maxChannelsCreatedPerClient == 5


@pytest.mark.gen_test(timeout=30)
async def test_five_anonymous_connections_cannot_use_up_the_app_channels(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        hogs = [await rt.client("chat") for _ in range(5)]
        for n, hog in enumerate(hogs):
            for i in range(30):
                await hog.send(subscribe(f"hog{n}-{i}"))
            replies = await hog.recv_many(30)
            codes = [m.get("code", m["type"]) for m in replies]
            assert codes == ["subscribed"] * 10 + ["channel_limit"] * 20
        # 50 of the app's 100 channels are taken; others can still create channels.
        newcomer = await rt.client("chat")
        await newcomer.subscribe("fresh")
        api = rt.plugin.api(rt.app("chat"))
        assert await api.count("hog0-9") == 1
        assert await api.count("hog0-10") == 0


@pytest.mark.gen_test(timeout=20)
async def test_the_budget_from_kernel_config(tmp_path: Path) -> None:
    async with realtime_kernel(
        tmp_path, realtime={"limits": {"maxChannelsCreatedPerClient": 1}}
    ) as rt:
        client = await rt.client("chat")
        await client.subscribe("one")
        refused = await client.request(subscribe("two"))
        assert refused["code"] == "channel_limit"
