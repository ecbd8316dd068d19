"""The /_ws protocol over real sockets through a real kernel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fazt.realtime.api import RealtimeAPIError
from tests.realtime.wsclient import realtime_kernel

RULES = {"realtime": {"channels": {"talk-*": {"publish": True}, "admin": {"role": "admin"}}}}


@pytest.mark.gen_test(timeout=20)
async def test_subscribe_broadcast_unsubscribe(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        a = await rt.client("chat")
        assert set(a.hello) == {"type", "clientId"} and a.hello["type"] == "connected"
        b = await rt.client("chat", rt.token("bob", name="Bob", role="user"))
        assert b.hello["user"] == {"id": "bob", "name": "Bob", "role": "user"}
        assert await a.subscribe("news") == {"type": "subscribed", "channel": "news"}
        await b.subscribe("news")
        api = rt.plugin.api(rt.app("chat"))
        await api.broadcast("news", {"headline": "hi"})
        for client in (a, b):
            message = await client.recv()
            assert message["type"] == "message" and message["channel"] == "news"
            assert message["data"] == {"headline": "hi"}
            assert isinstance(message["timestamp"], int) and message["timestamp"] > 1.7e12
        assert await api.count() == 2
        assert await api.count("news") == 2
        subscribers = {entry["clientId"]: entry for entry in await api.subscribers("news")}
        assert set(subscribers) == {a.client_id, b.client_id}
        assert subscribers[b.client_id]["metadata"]["sub"] == "bob"
        assert subscribers[a.client_id]["metadata"] == {}
        await api.broadcast_all({"note": "all"})
        assert (await a.recv()) == (await b.recv())
        assert await a.request({"type": "unsubscribe", "channel": "news"}) == {
            "type": "unsubscribed",
            "channel": "news",
        }
        await api.broadcast("news", 2)
        assert (await b.recv())["data"] == 2
        assert await a.nothing_within(0.1)
        assert await a.request({"type": "ping"}) == {"type": "pong"}
        await a.close()
        await b.close()
        for _ in range(50):
            if await api.count() == 0:
                break
            await asyncio.sleep(0.02)
        assert await api.count() == 0
        assert await api.count("news") == 0


BAD_FRAMES = [
    ("{nope", "invalid_json"),
    ('{"type":"message","channel":"c","data":Infinity}', "invalid_json"),
    ("[1,2]", "invalid_message"),
    ('"text"', "invalid_message"),
    ("{}", "invalid_message"),
    ('{"type":null}', "invalid_message"),
    ('{"type":"subscribe"}', "invalid_message"),
    ('{"type":"subscribe","channel":{"a":1}}', "invalid_message"),
    ('{"type":"message","channel":"talk-1"}', "invalid_message"),
    ('{"type":"auth","token":42}', "invalid_message"),
    ('{"type":"launch"}', "unknown_type"),
    ('{"type":"subscribe","channel":""}', "invalid_channel"),
    ('{"type":"subscribe","channel":"has space"}', "invalid_channel"),
    ('{"type":"subscribe","channel":"emoji-\\ud83d\\ude00"}', "invalid_channel"),
    (json.dumps({"type": "subscribe", "channel": "x" * 201}), "invalid_channel"),
    (json.dumps({"type": "subscribe", "channel": "x" * 20_000}), "invalid_channel"),
    ('{"type":"unsubscribe","channel":"never"}', "not_subscribed"),
    ('{"type":"members","channel":"presence-x"}', "not_subscribed"),
    ('{"type":"subscribe","channel":"private-x"}', "unauthorized"),
    ('{"type":"subscribe","channel":"presence-x"}', "unauthorized"),
    ('{"type":"subscribe","channel":"admin"}', "unauthorized"),
    ('{"type":"message","channel":"quiet","data":1}', "forbidden"),
    ('{"type":"message","channel":"talk-1","data":1}', "not_subscribed"),
    ('{"type":"auth","token":"not.a.jwt"}', "unauthorized"),
]


@pytest.mark.gen_test(timeout=20)
async def test_every_bad_frame_gets_a_documented_error(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, {"chat": RULES}) as rt:
        client = await rt.client("chat")
        bystander = await rt.client("chat")
        await bystander.subscribe("talk-1")
        for frame, code in BAD_FRAMES:
            reply = await client.request(frame)
            assert reply["type"] == "error", (frame, reply)
            assert reply["code"] == code, (frame, reply)
            assert isinstance(reply["error"], str) and reply["error"]
        # Binary frames are read as UTF-8 text; garbage bytes are invalid JSON.
        await client.send(b"\xff\x00\x81")
        assert (await client.recv())["code"] == "invalid_json"
        await client.send(b'{"type":"ping"}')
        assert await client.recv() == {"type": "pong"}
        # Still fully working, and the bystander never saw any of it.
        await client.subscribe("talk-1")
        await client.send({"type": "message", "channel": "talk-1", "data": "ok"})
        message = await bystander.recv()
        assert message["data"] == "ok" and message["from"] == client.client_id
        assert await bystander.nothing_within(0.05)


@pytest.mark.gen_test(timeout=20)
async def test_oversize_frame_closes_1009_and_others_live(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, realtime={"limits": {"maxMessageSizeKB": 1}}) as rt:
        big = await rt.client("chat")
        other = await rt.client("chat")
        await big.send({"type": "ping", "pad": "x" * 900})
        assert await big.recv() == {"type": "pong"}
        await big.send({"type": "ping", "pad": "x" * 1100})
        code, _ = await big.expect_close()
        assert code == 1009
        assert await other.request({"type": "ping"}) == {"type": "pong"}
        api = rt.plugin.api(rt.app("chat"))
        with pytest.raises(RealtimeAPIError, match="over the 1024-byte limit"):
            await api.broadcast("c", "x" * 1100)


@pytest.mark.gen_test(timeout=20)
async def test_unknown_app_is_closed_4001(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        from tests.realtime.wsclient import open_client

        url = rt.url("chat").replace("/_app/chat/", "/_app/ghost/")
        with pytest.raises(Exception) as caught:
            await open_client(url)
        assert getattr(getattr(caught.value, "rcvd", None), "code", None) == 4001


@pytest.mark.gen_test(timeout=20)
async def test_two_apps_are_isolated_even_with_hostile_names(tmp_path: Path) -> None:
    apps = {"one": RULES, "two": RULES}
    async with realtime_kernel(tmp_path, apps) as rt:
        one, two = rt.app("one"), rt.app("two")
        c1 = await rt.client("one")
        c2 = await rt.client("two")
        await c1.subscribe("talk-x")
        # Names that try to reach app one's channel from app two.
        for name in ("talk-x", f"{one.uuid}:talk-x", f"{one.uuid}:{one.uuid}:talk-x", ":talk-x"):
            await c2.subscribe(name)
        await rt.plugin.api(two).broadcast("talk-x", "for two")
        await rt.plugin.api(two).broadcast(f"{one.uuid}:talk-x", "for two, strange name")
        await rt.plugin.api(two).broadcast_all("two only")
        assert [(await c2.recv())["data"] for _ in range(3)] == [
            "for two",
            "for two, strange name",
            "two only",
        ]
        assert await c1.nothing_within(0.1)
        await c2.send({"type": "message", "channel": "talk-x", "data": "pub"})
        assert await c1.nothing_within(0.1)
        assert await rt.plugin.api(two).kick(c1.client_id, "cross-app") is False
        assert await rt.plugin.api(one).count("talk-x") == 1
        assert await rt.plugin.api(two).count() == 1
        await rt.plugin.api(one).broadcast("talk-x", "for one")
        assert (await c1.recv())["data"] == "for one"
        assert await c2.nothing_within(0.1)


@pytest.mark.gen_test(timeout=20)
async def test_presence_across_two_tabs(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        watcher = await rt.client("chat", rt.token("wat", name="Wat"))
        reply = await watcher.subscribe("presence-room")
        assert reply["members"] == [{"id": "wat", "name": "Wat"}]
        alice_token = rt.token("alice", name="Alice", info={"avatar": "a.png"})
        tab1 = await rt.client("chat", alice_token)
        tab2 = await rt.client("chat", alice_token)
        alice = {"id": "alice", "name": "Alice", "avatar": "a.png"}
        first = await tab1.subscribe("presence-room")
        assert first["members"] == [{"id": "wat", "name": "Wat"}, alice]
        assert await watcher.recv() == {
            "type": "presence",
            "channel": "presence-room",
            "event": "join",
            "client": alice,
        }
        await tab2.subscribe("presence-room")
        assert await watcher.nothing_within(0.1)  # second tab: no second join
        assert (await tab1.request({"type": "members", "channel": "presence-room"}))["members"] == [
            {"id": "wat", "name": "Wat"},
            alice,
        ]
        await tab1.close()
        assert await watcher.nothing_within(0.15)  # tab2 still holds alice
        await tab2.close()
        leave = await watcher.recv()
        assert leave == {
            "type": "presence",
            "channel": "presence-room",
            "event": "leave",
            "client": alice,
        }
        members = await watcher.request({"type": "members", "channel": "presence-room"})
        assert members["members"] == [{"id": "wat", "name": "Wat"}]


@pytest.mark.gen_test(timeout=20)
async def test_client_publish_rules_and_roles(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, {"chat": RULES}) as rt:
        admin = await rt.client("chat", rt.token("root", role=["ops", "admin"]))
        user = await rt.client("chat", rt.token("joe", role="user"))
        listener = await rt.client("chat")
        assert (await user.request({"type": "subscribe", "channel": "admin"}))[
            "code"
        ] == "forbidden"
        await admin.subscribe("admin")
        await admin.send({"type": "message", "channel": "admin", "data": 1})
        assert (await admin.recv())["code"] == "forbidden"  # subscribed, but no publish rule
        for client in (user, listener):
            await client.subscribe("talk-room")
        await user.send({"type": "message", "channel": "talk-room", "data": {"text": "hey"}})
        message = await listener.recv()
        assert message["from"] == user.client_id and message["data"] == {"text": "hey"}
        assert await user.nothing_within(0.1)  # not echoed


@pytest.mark.gen_test(timeout=20)
async def test_kick(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        victim = await rt.client("chat")
        api = rt.plugin.api(rt.app("chat"))
        assert await api.kick(victim.client_id, "spam") is True
        code, seen = await victim.expect_close()
        assert seen == [{"type": "kicked", "reason": "spam"}]
        assert code == 4003
        assert await api.kick(victim.client_id, "again") is False
        with pytest.raises(RealtimeAPIError):
            await api.kick("", "x")


@pytest.mark.gen_test(timeout=30)
async def test_ordering_per_channel_on_the_fast_path(tmp_path: Path) -> None:
    limits = {"maxMessagesPerSecond": 100_000}
    async with realtime_kernel(tmp_path, {"chat": RULES}, {"limits": limits}) as rt:
        readers = [await rt.client("chat") for _ in range(10)]
        for reader in readers:
            await reader.subscribe("talk-order")
        publisher = await rt.client("chat")
        await publisher.subscribe("talk-order")
        api = rt.plugin.api(rt.app("chat"))
        count = 1000
        for i in range(count):
            if i % 2:
                await api.broadcast("talk-order", i)
            else:
                await publisher.send({"type": "message", "channel": "talk-order", "data": i})
        # Interleaved client publishes and API broadcasts: each path keeps its order;
        # API broadcasts are synchronous here, so odd numbers are strictly ordered,
        # as are even ones.
        for reader in readers:
            got = [message["data"] for message in await reader.recv_many(count)]
            assert sorted(got) == list(range(count))
            evens = [n for n in got if n % 2 == 0]
            odds = [n for n in got if n % 2]
            assert evens == sorted(evens) and odds == sorted(odds)
