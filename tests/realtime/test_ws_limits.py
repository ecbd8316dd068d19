"""The limits over real sockets: 80 % notifications and 100 % refusals."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from fazt.kernel.notifications import Notification
from tests.realtime.wsclient import Realtime, realtime_kernel, upgrade_status


def collect(rt: Realtime) -> list[Notification]:
    seen: list[Notification] = []
    rt.kernel.notifications.subscribe(seen.append)
    return seen


@pytest.mark.gen_test(timeout=20)
async def test_connections_per_app_warn_at_80_and_refuse_at_100(tmp_path: Path) -> None:
    limits = {"maxConnectionsPerApp": 5}
    async with realtime_kernel(tmp_path, {"chat": {}, "poll": {}}, {"limits": limits}) as rt:
        seen = collect(rt)
        clients = [await rt.client("chat") for _ in range(3)]
        assert seen == []
        clients.append(await rt.client("chat"))  # 4/5 = 80 %
        assert [(n.kind, n.app_uuid, dict(n.data)) for n in seen] == [
            (
                "realtime.limit.warning",
                rt.app("chat").uuid,
                {"limit": "maxConnectionsPerApp", "used": 4, "max": 5},
            )
        ]
        clients.append(await rt.client("chat"))  # 5/5: no second warning
        assert len(seen) == 1
        assert await upgrade_status(rt.url("chat")) == 503
        assert await upgrade_status(rt.url("chat")) == 503  # refused again: reported once
        assert await upgrade_status(rt.url("poll")) == 101  # per app
        assert [(n.kind, dict(n.data)) for n in seen[1:]] == [
            (
                "realtime.limit.rejection",
                {"limit": "maxConnectionsPerApp", "used": 5, "max": 5},
            )
        ]
        # Falling under 80 % and crossing again warns again.
        for client in clients[:3]:
            await client.close()
        api = rt.plugin.api(rt.app("chat"))
        while await api.count() > 2:
            await clients[-1].request({"type": "ping"})
        for _ in range(2):
            clients.append(await rt.client("chat"))
        assert [n.kind for n in seen] == [
            "realtime.limit.warning",
            "realtime.limit.rejection",
            "realtime.limit.warning",
        ]


@pytest.mark.gen_test(timeout=20)
async def test_connections_total_and_app_json_lowering(tmp_path: Path) -> None:
    apps = {"chat": {"limits": {"realtime": {"maxConnectionsPerApp": 2}}}, "poll": {}}
    limits = {"maxConnectionsTotal": 4, "maxConnectionsPerApp": 100}
    async with realtime_kernel(tmp_path, apps, {"limits": limits}) as rt:
        seen = collect(rt)
        await rt.client("chat")
        await rt.client("chat")
        assert await upgrade_status(rt.url("chat")) == 503  # app lowered its limit to 2
        await rt.client("poll")  # 3 of 4 total
        assert not any(n.data["limit"] == "maxConnectionsTotal" for n in seen)
        await rt.client("poll")  # 4 of 4 total: the 80 % crossing was at 3.2 -> 4
        assert [n.data["limit"] for n in seen].count("maxConnectionsTotal") == 1
        assert seen[-1].app_uuid is None
        assert await upgrade_status(rt.url("poll")) == 503


@pytest.mark.gen_test(timeout=20)
async def test_an_app_cannot_raise_a_kernel_limit(tmp_path: Path) -> None:
    apps = {"chat": {"limits": {"realtime": {"maxSubscriptionsPerClient": 500}}}}
    async with realtime_kernel(tmp_path, apps, {"limits": {"maxSubscriptionsPerClient": 2}}) as rt:
        client = await rt.client("chat")
        await client.subscribe("a")
        await client.subscribe("b")
        reply = await client.request({"type": "subscribe", "channel": "c"})
        assert reply == {
            "type": "error",
            "code": "subscription_limit",
            "error": "at most 2 subscriptions per client",
            "channel": "c",
        }


@pytest.mark.gen_test(timeout=20)
async def test_channels_per_app(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, realtime={"limits": {"maxChannelsPerApp": 5}}) as rt:
        seen = collect(rt)
        one = await rt.client("chat")
        two = await rt.client("chat")
        for name in ("c1", "c2", "c3"):
            await one.subscribe(name)
        assert seen == []
        await two.subscribe("c4")  # 4/5
        assert [n.data for n in seen] == [{"limit": "maxChannelsPerApp", "used": 4, "max": 5}]
        await two.subscribe("c5")
        refused = await two.request({"type": "subscribe", "channel": "c6"})
        assert refused["code"] == "channel_limit" and refused["channel"] == "c6"
        await two.subscribe("c1")  # an existing channel is always fine
        await one.request({"type": "unsubscribe", "channel": "c2"})
        await two.subscribe("c6")  # c2 is gone: room for one more


@pytest.mark.gen_test(timeout=20)
async def test_rate_limit_and_a_flood_of_10000_subscribes(tmp_path: Path) -> None:
    # A channel budget above the subscription limit: the latter is what a flood meets.
    limits = {"maxMessagesPerSecond": 50, "maxChannelsCreatedPerClient": 100}
    async with realtime_kernel(tmp_path, realtime={"limits": limits}) as rt:
        flooder = await rt.client("chat")
        calm = await rt.client("chat")
        await calm.subscribe("news")
        frames = [f'{{"type":"subscribe","channel":"flood-{i}"}}' for i in range(10_000)]
        started = time.monotonic()
        for frame in frames:
            await flooder.ws.send(frame)
        await flooder.ws.send('{"type":"pong"}')  # pongs are never rate limited
        # The calm client is served promptly while the flood is processed.
        assert await calm.request({"type": "ping"}) == {"type": "pong"}
        replies = []
        with contextlib.suppress(asyncio.TimeoutError):
            while True:
                replies.append(await flooder.recv(timeout=0.3))
        elapsed = time.monotonic() - started
        kinds = [m.get("code", m["type"]) for m in replies]
        assert kinds.count("subscribed") == 20
        # A 50-token bucket refilled at 50/s: everything else was dropped.
        accepted = len(kinds) - kinds.count("rate_limited")
        assert 50 <= accepted <= 50 + 50 * elapsed + 1
        assert 1 <= kinds.count("rate_limited") <= elapsed + 1  # at most once a second
        assert len(replies) < 1000
        api = rt.plugin.api(rt.app("chat"))
        assert await api.count("flood-0") == 1
        assert await api.count("flood-20") == 0
        await api.broadcast("news", "still fine")
        assert (await calm.recv())["data"] == "still fine"
