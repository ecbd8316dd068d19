"""``/metrics`` after known traffic: every realtime, JS and HTTP metric by name and label."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import tornado.httpclient

from fazt.ops.exposition import merge_workers
from tests.ops.support import admin_kernel, samples, value

APPS = {"chat": {"realtime": {"channels": {"room-*": {"publish": True}}}}, "poll": {}}
HANDLER = """
module.exports = async (req) => {
  const body = req.json || {};
  if (body.op === 'broadcast') {
    await fazt.realtime.broadcast(body.channel, body.data);
    return {json: {ok: true}};
  }
  if (body.op === 'kick') return {json: {kicked: await fazt.realtime.kick(body.target)}};
  throw new Error('boom');
};
"""


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await probe():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def post(url: str, body: object) -> tuple[int, object]:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        url, method="POST", body=json.dumps(body), raise_error=False
    )
    return response.code, json.loads(response.body)


@pytest.mark.gen_test(timeout=40)
async def test_realtime_js_and_http_metrics_after_known_traffic(tmp_path: Path) -> None:
    files = {"chat": {"api/rt.js": HANDLER, "index.html": "<p>hi</p>"}}
    async with admin_kernel(tmp_path, APPS, files=files) as admin:
        rt = admin.rt
        # JS and HTTP metrics are the process's, labelled by slug: other tests' "chat"
        # apps count there too, so those are compared with their values before.
        before = await admin.metrics()
        clients = [await rt.client("chat") for _ in range(3)]
        for client in clients:
            await client.subscribe("room-a")
        await clients[1].subscribe("room-b")
        await rt.client("poll")
        found = await admin.metrics()
        assert value(found, "fazt_realtime_connections", app="chat") == 3
        assert value(found, "fazt_realtime_connections", app="poll") == 1
        assert value(found, "fazt_realtime_subscriptions", app="chat") == 4
        assert value(found, "fazt_realtime_channels", app="chat") == 2
        assert value(found, "fazt_realtime_backplane_up") == 1
        assert value(found, "fazt_realtime_backplane_dropped_total") == 0

        # Two client publishes reach the two other subscribers each; one JS broadcast
        # reaches all three: 2 x 2 + 3 deliveries.
        for text in ("one", "two"):
            await clients[0].send({"type": "message", "channel": "room-a", "data": text})
        for client in clients[1:]:
            assert [m["data"] for m in await client.recv_many(2)] == ["one", "two"]
        url = rt.running.url("chat", "/api/rt")
        assert await post(url, {"op": "broadcast", "channel": "room-a", "data": 3}) == (
            200,
            {"ok": True},
        )
        for client in clients:
            assert (await client.recv())["data"] == 3
        assert (await post(url, {"op": "throw"}))[0] == 500
        # An error frame: publishing where one is not subscribed.
        reply = await clients[2].request({"type": "message", "channel": "room-z", "data": 1})
        assert reply["code"] == "not_subscribed"
        assert (
            await tornado.httpclient.AsyncHTTPClient().fetch(rt.running.url("chat"))
        ).code == 200

        found = await admin.metrics()
        assert value(found, "fazt_realtime_publications_total", app="chat", source="client") == 2
        assert value(found, "fazt_realtime_publications_total", app="chat", source="server") == 1
        assert value(found, "fazt_realtime_deliveries_total", app="chat") == 7
        assert value(found, "fazt_realtime_errors_total", app="chat", code="not_subscribed") == 1

        def grew(name: str, **labels: str) -> float:
            return value(found, name, **labels) - value(before, name, **labels)

        assert grew("fazt_js_executions_total", app="chat", outcome="ok") == 1
        assert grew("fazt_js_executions_total", app="chat", outcome="error") == 1
        assert grew("fazt_js_execution_seconds_count", app="chat") == 2
        # The page and the broadcast POST; the WebSocket upgrades are logged as they close.
        assert grew("fazt_http_requests_total", app="chat", status_class="2xx") >= 2
        assert grew("fazt_http_requests_total", app="chat", status_class="5xx") == 1

        # Disconnects by code: a kick from JS (4003), a normal close, a code fazt does
        # not know (bounded as "other").
        target = {"clientId": clients[0].client_id}
        assert await post(url, {"op": "kick", "target": target}) == (200, {"kicked": 1})
        await clients[1].close()
        await clients[2].ws.close(code=4999)

        async def closed() -> bool:
            found = await admin.metrics()
            return all(
                value(found, "fazt_realtime_disconnects_total", app="chat", code=code) == 1
                for code in ("4003", "1000", "other")
            )

        await eventually(closed, "three disconnects by code")
        found = await admin.metrics()
        assert value(found, "fazt_realtime_connections", app="chat") == 0
        # Labels are app slugs and fixed enums: no channel, client or user anywhere.
        for _, labels in found:
            for label, label_value in labels:
                assert "room" not in label_value and clients[0].client_id not in label_value
                assert label in {
                    "app",
                    "source",
                    "code",
                    "limit",
                    "outcome",
                    "status_class",
                    "le",
                    "generation",
                    "implementation",
                    "major",
                    "minor",
                    "patchlevel",
                    "version",
                }, label


@pytest.mark.gen_test(timeout=40)
async def test_limit_warnings_and_rejections_are_counted(tmp_path: Path) -> None:
    limits = {"maxSubscriptionsPerClient": 5, "maxMessageSizeKB": 1, "maxConnectionsPerApp": 5}
    async with admin_kernel(tmp_path, APPS, {"limits": limits}) as admin:
        rt = admin.rt
        client = await rt.client("chat")
        for index in range(5):
            await client.subscribe(f"room-{index}")  # the 4th is 80 %
        for _ in range(2):
            reply = await client.request({"type": "subscribe", "channel": "room-x"})
            assert reply["code"] == "subscription_limit"
        # 80 % of the size limit passes (a warning); over it closes with 1009.
        await client.send({"type": "ping", "pad": "x" * 850})
        assert (await client.recv())["type"] == "pong"
        big = await rt.client("chat")
        await big.send({"type": "ping", "pad": "x" * 1100})
        assert (await big.expect_close())[0] == 1009

        async def counted() -> bool:
            found = await admin.metrics()
            return (
                value(
                    found,
                    "fazt_realtime_limit_rejections_total",
                    app="chat",
                    limit="maxMessageSizeKB",
                )
                == 1
            )

        await eventually(counted, "the 1009 rejection")
        found = await admin.metrics()
        warnings = "fazt_realtime_limit_warnings_total"
        rejections = "fazt_realtime_limit_rejections_total"
        assert value(found, warnings, app="chat", limit="maxSubscriptionsPerClient") == 1
        assert value(found, rejections, app="chat", limit="maxSubscriptionsPerClient") == 2
        assert value(found, warnings, app="chat", limit="maxMessageSizeKB") == 1
        assert value(found, "fazt_realtime_disconnects_total", app="chat", code="1009") == 1
        assert (
            value(found, "fazt_realtime_errors_total", app="chat", code="subscription_limit") == 2
        )
        # Connections: 80 % is the 4th, the 6th is refused (HTTP 503).
        api = rt.plugin.api(rt.app("chat"))

        async def one_left() -> bool:
            return await api.count() == 1

        await eventually(one_left, "the closed connection to be forgotten")
        more = [await rt.client("chat") for _ in range(4)]
        assert len(more) == 4
        with pytest.raises(Exception, match="503"):
            await rt.client("chat")
        found = await admin.metrics()
        assert value(found, warnings, app="chat", limit="maxConnectionsPerApp") == 1
        assert value(found, rejections, app="chat", limit="maxConnectionsPerApp") == 1
        events = (await admin.get("/admin/overview"))["events"]
        kinds = {
            (event["kind"], event["data"]["limit"])
            for event in events
            if event["app"] == "chat" and event["kind"].startswith("limit.")
        }
        assert ("limit.rejection", "maxMessageSizeKB") in kinds
        assert ("limit.warning", "maxConnectionsPerApp") in kinds


@pytest.mark.gen_test(timeout=30)
async def test_an_app_that_lowers_the_size_limit_is_watched_against_its_own(
    tmp_path: Path,
) -> None:
    apps = {"small": {"limits": {"realtime": {"maxMessageSizeKB": 1}}}}
    async with admin_kernel(tmp_path, apps) as admin:  # the kernel's limit: 64 KB
        client = await admin.rt.client("small")
        await client.send({"type": "ping", "pad": "x" * 850})  # over 80 % of 1 KB
        assert (await client.recv())["type"] == "pong"
        found = await admin.metrics()
        warnings = "fazt_realtime_limit_warnings_total"
        assert value(found, warnings, app="small", limit="maxMessageSizeKB") == 1


def test_workers_metrics_are_merged_with_a_worker_label() -> None:
    text0 = (
        "# HELP fazt_realtime_deliveries_total d\n# TYPE fazt_realtime_deliveries_total counter\n"
        'fazt_realtime_deliveries_total{app="chat"} 3.0\n'
    )
    text1 = text0.replace("3.0", "4.0")
    merged = samples(merge_workers([("0", text0), ("1", text1)]).decode())
    assert merged == {
        ("fazt_realtime_deliveries_total", frozenset({("app", "chat"), ("worker", "0")})): 3.0,
        ("fazt_realtime_deliveries_total", frozenset({("app", "chat"), ("worker", "1")})): 4.0,
    }
