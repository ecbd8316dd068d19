"""Ordering, subscribe races and history across real ``fazt serve`` processes on one Redis.

Each test starts its own ``redis-server`` and kernels (``ClusterRig``) and stops
them by PID. The app ``chat`` has a plain channel ``room`` and history channels
``log-*``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.cluster.test_cluster import ClusterRig, data_of
from tests.harness import FaztProcess
from tests.realtime.backplane.redis_server import needs_redis_server
from tests.realtime.wsclient import Client

pytestmark = [pytest.mark.redis, needs_redis_server]

CHANNELS = {
    "room": {"publish": True},
    "round-*": {"publish": True},
    "log-*": {"publish": True, "history": {"size": 2000, "ttlSeconds": 600}},
}

FILES = {
    # 'n' broadcasts started at once (Promise.all): the host calls are all in
    # flight together, as concurrent requests would be.
    "api/burst.js": """
module.exports = async (req) => {
  const n = Number(req.query.n);
  const sends = [];
  for (let i = 0; i < n; i++) sends.push(fazt.realtime.broadcast(req.query.channel, {i}));
  const positions = await Promise.all(sends);
  return { json: { positions } };
};
""",
    "api/publish.js": """
module.exports = async (req) => {
  try {
    return { json: { position: await fazt.realtime.broadcast(req.query.channel, req.query.text) } };
  } catch (error) {
    return { status: 503, json: { error: error.message } };
  }
};
""",
}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ClusterRig]:
    rig = ClusterRig(tmp_path, CHANNELS, FILES)
    try:
        yield rig
    finally:
        rig.close()


async def get(node: FaztProcess, name: str, **query: Any) -> tuple[int, Any]:
    url = node.url("chat", f"/api/{name}") + "?" + urlencode(query)
    response = await AsyncHTTPClient().fetch(url, request_timeout=30, raise_error=False)
    return response.code, json.loads(response.body)


async def subscribe(client: Client, channel: str, **extra: Any) -> dict[str, Any]:
    reply = await client.request({"type": "subscribe", "channel": channel, **extra})
    assert reply["type"] == "subscribed", reply
    return reply


@pytest.mark.parametrize("channel", ["room", "log-1"], ids=["without-history", "with-history"])
@pytest.mark.gen_test(timeout=90)
async def test_a_thousand_rapid_broadcasts_arrive_in_order_on_another_node(
    rig: ClusterRig, channel: str
) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        far = await rig.client(two)
        near = await rig.client(one)
        await subscribe(far, channel)
        await subscribe(near, channel)
        count = 1000
        status, body = await get(one, "burst", channel=channel, n=count)
        assert status == 200, body
        for client in (far, near):
            received = await client.recv_many(count, timeout=30)
            assert [m["data"]["i"] for m in received] == list(range(count))
            if channel.startswith("log-"):
                assert [m["offset"] for m in received] == list(range(1, count + 1))
        if channel.startswith("log-"):
            offsets = [position["offset"] for position in body["positions"]]
            assert offsets == list(range(1, count + 1))  # numbered in call order
        assert await far.nothing_within(0.2)
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=120)
async def test_a_publish_right_after_subscribed_reaches_the_subscriber_on_another_node(
    rig: ClusterRig,
) -> None:
    rig.realtime = {"limits": {"maxMessagesPerSecond": 10_000}}  # 200 quick rounds
    one, two = rig.start_node(), rig.start_node()
    try:
        listener = await rig.client(one)
        publisher = await rig.client(two)
        rounds = 200
        for i in range(rounds):
            channel = f"round-{i}"
            await subscribe(publisher, channel)
            await subscribe(listener, channel)
            # The moment node one said "subscribed", node two publishes.
            await publisher.send({"type": "message", "channel": channel, "data": i})
            message = await listener.recv(timeout=5)
            assert (message["channel"], message["data"]) == (channel, i), message
            # Leave, so node one unsubscribes from Redis and the next round starts cold.
            await listener.request({"type": "unsubscribe", "channel": channel})
            await publisher.request({"type": "unsubscribe", "channel": channel})
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=90)
async def test_a_client_recovers_on_another_node_what_both_nodes_published(
    rig: ClusterRig,
) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        reader = await rig.client(one)
        start = await subscribe(reader, "log-1")
        assert start["offset"] == 0
        writer = await rig.client(two)
        await subscribe(writer, "log-1")
        await get(one, "publish", channel="log-1", text="seen")
        [seen] = await reader.recv_many(1)
        await reader.close()
        # While the reader is away: a broadcast on each node and a client publish.
        await get(one, "publish", channel="log-1", text="from one")
        await get(two, "publish", channel="log-1", text="from two")
        assert data_of(await writer.recv_many(3)) == ["seen", "from one", "from two"]
        await writer.send({"type": "message", "channel": "log-1", "data": "from a client"})
        assert await writer.request({"type": "ping"}) == {"type": "pong"}  # it was published
        status, body = await get(two, "publish", channel="log-1", text="sentinel")
        assert status == 200 and body["position"]["offset"] == 5, body

        back = await rig.client(two)
        since = {"offset": seen["offset"], "epoch": start["epoch"]}
        reply = await subscribe(back, "log-1", since=since)
        assert (reply["recovered"], reply["offset"], reply["epoch"]) == (True, 5, start["epoch"])
        recovered = await back.recv_many(4)
        assert [m["offset"] for m in recovered] == [2, 3, 4, 5]
        assert data_of(recovered) == ["from one", "from two", "from a client", "sentinel"]
        assert recovered[2]["from"] == writer.client_id
        await get(one, "publish", channel="log-1", text="live")
        [live] = await back.recv_many(1)
        assert (live["data"], live["offset"]) == ("live", 6)
        assert await back.nothing_within(0.2)
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=120)
async def test_redis_restarted_empty_gives_recovered_false_then_a_live_stream(
    rig: ClusterRig,
) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        a = await rig.client(one)
        b = await rig.client(two)
        first = await subscribe(a, "log-1")
        await subscribe(b, "log-1")
        for i in range(3):
            await get(one, "publish", channel="log-1", text=f"before {i}")
        for client in (a, b):
            assert [m["offset"] for m in await client.recv_many(3)] == [1, 2, 3]

        rig.redis.stop()  # comes back empty: persistence is off
        status, body = await get(one, "publish", channel="log-1", text="during")
        assert status == 503 and "history is unavailable" in body["error"]
        rig.redis.start()

        # Wait until both nodes are back on Redis (each reconnects with its own
        # jittered backoff): a node still cut off when "after" is published
        # misses it, and its clients would only learn of the hole at the next one.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not all("is reachable again" in node.log_text() for node in (one, two)):
            assert loop.time() < deadline, "the nodes did not reconnect to Redis"
            await asyncio.sleep(0.05)
        status, body = await get(one, "publish", channel="log-1", text="after")
        assert status == 200, body
        new = body["position"]
        assert new["offset"] == 1 and new["epoch"] != first["epoch"]
        for client in (a, b):
            hole, message = await client.recv_many(2, timeout=10)
            # Told first that the stream lost data, then the live stream goes on.
            assert hole == {
                "type": "subscribed",
                "channel": "log-1",
                "offset": 0,
                "epoch": new["epoch"],
                "recovered": False,
            }
            assert (message["data"], message["offset"]) == ("after", 1)
            assert await client.nothing_within(0.2)  # nothing wrong, nothing twice

        # A client coming back with a position of the lost epoch: not recovered.
        late = await rig.client(two)
        stale = {"offset": 3, "epoch": first["epoch"]}
        reply = await subscribe(late, "log-1", since=stale)
        assert (reply["recovered"], reply["offset"], reply["epoch"]) == (False, 1, new["epoch"])
        assert await late.nothing_within(0.2)
        await get(two, "publish", channel="log-1", text="later")
        for client in (a, b, late):
            [message] = await client.recv_many(1)
            assert (message["data"], message["offset"]) == ("later", 2)
    finally:
        await rig.close_clients()
    for node in (one, two):
        assert "Traceback" not in node.log_text()
