"""History and recovery over real sockets, through a real kernel (memory store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.realtime.wsclient import Client, post_json, realtime_kernel

ROOMS = {
    "realtime": {
        "channels": {
            "room-*": {"publish": True, "history": {"size": 2000, "ttlSeconds": 600}},
            "plain": {"publish": True},
        }
    }
}

HANDLER = """
module.exports = async (req) => {
  const rt = fazt.realtime;
  const body = req.json || {};
  if (body.op === 'broadcast') {
    const result = await rt.broadcast(body.channel, body.data);
    return {json: {result: result === undefined ? 'undefined' : result}};
  }
  if (body.op === 'history') return {json: {result: await rt.history(body.channel, body.options)}};
  if (body.op === 'bad') {
    const errors = [];
    const attempts = [
      () => rt.history('plain'),
      () => rt.history('room-1', {since: {offset: 1, epoch: 'nope'}}),
      () => rt.history('room-1', {limit: -1}),
      () => rt.history('room-1', 'ten'),
    ];
    for (const attempt of attempts) {
      try { await attempt(); errors.push(null); } catch (e) { errors.push(e.message); }
    }
    return {json: {errors}};
  }
  return {status: 400, json: {error: 'unknown op'}};
};
"""


async def call(url: str, body: dict[str, Any]) -> Any:
    return (await post_json(url, body))["result" if "errors" not in body else "errors"]


async def read_messages(client: Client, count: int) -> list[dict[str, Any]]:
    return await client.recv_many(count, timeout=10)


@pytest.mark.gen_test(timeout=30)
async def test_a_client_that_reconnects_gets_what_it_missed_once_in_order(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, {"chat": ROOMS}) as rt:
        api = rt.plugin.api(rt.app("chat"))
        reader = await rt.client("chat")
        subscribed = await reader.subscribe("room-1")
        assert (subscribed["offset"], "recovered" in subscribed) == (0, False)
        epoch = subscribed["epoch"]
        writer = await rt.client("chat")
        await writer.subscribe("room-1")
        await api.broadcast("room-1", "before")
        [before] = await read_messages(reader, 1)
        assert before["offset"] == 1
        assert (await read_messages(writer, 1))[0] == before
        await reader.close()  # a network blip

        await writer.send({"type": "message", "channel": "room-1", "data": "while away 1"})
        assert await writer.request({"type": "ping"}) == {"type": "pong"}  # handled in order
        await api.broadcast("room-1", "while away 2")
        assert (await read_messages(writer, 1))[0]["data"] == "while away 2"

        back = await rt.client("chat")
        since = {"offset": before["offset"], "epoch": epoch}
        await back.send({"type": "subscribe", "channel": "room-1", "since": since})
        reply, first, second = await read_messages(back, 3)
        assert reply == {
            "type": "subscribed",
            "channel": "room-1",
            "offset": 3,
            "epoch": epoch,
            "recovered": True,
        }
        assert (first["data"], first["offset"], first["from"]) == (
            "while away 1",
            2,
            writer.client_id,
        )
        assert (second["data"], second["offset"], "from" in second) == ("while away 2", 3, False)
        await api.broadcast("room-1", "live")
        assert [(m["data"], m["offset"]) for m in await read_messages(back, 1)] == [("live", 4)]
        assert await back.nothing_within(0.1)


@pytest.mark.gen_test(timeout=60)
async def test_recovering_a_thousand_messages_fits_the_outgoing_queue(tmp_path: Path) -> None:
    # 1,000 recovered messages go out at once; joined into a few writes they stay
    # within the 16-frame queue, so the client is not closed as a slow consumer.
    async with realtime_kernel(tmp_path, {"chat": ROOMS}, {"outgoingQueueSize": 16}) as rt:
        api = rt.plugin.api(rt.app("chat"))
        position = None
        for i in range(1000):
            position = await api.broadcast("room-1", {"i": i, "pad": "x" * 100})
        assert position is not None
        client = await rt.client("chat")
        await client.send(
            {"type": "subscribe", "channel": "room-1", "since": {**position, "offset": 0}}
        )
        reply, *recovered = await read_messages(client, 1001)
        assert reply["recovered"] is True and reply["offset"] == 1000
        assert [m["offset"] for m in recovered] == list(range(1, 1001))
        assert await client.alive()


@pytest.mark.gen_test(timeout=30)
async def test_the_history_request_over_the_wire(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, {"chat": ROOMS}) as rt:
        api = rt.plugin.api(rt.app("chat"))
        client = await rt.client("chat")
        assert (await client.request({"type": "history", "channel": "room-1"}))["code"] == (
            "not_subscribed"
        )
        epoch = (await client.subscribe("room-1"))["epoch"]
        await client.subscribe("plain")
        for i in range(3):
            await api.broadcast("room-1", i)
        await read_messages(client, 3)
        reply = await client.request({"type": "history", "channel": "room-1", "limit": 2})
        assert reply["type"] == "history" and (reply["offset"], reply["epoch"]) == (3, epoch)
        assert [(p["data"], p["offset"]) for p in reply["publications"]] == [(1, 2), (2, 3)]
        assert isinstance(reply["publications"][0]["timestamp"], int)
        refusal = await client.request({"type": "history", "channel": "plain"})
        assert (refusal["type"], refusal["code"], refusal["channel"]) == (
            "error",
            "history_disabled",
            "plain",
        )
        gone = await client.request(
            {"type": "history", "channel": "room-1", "since": {"offset": 1, "epoch": "old"}}
        )
        assert gone["code"] == "history_unrecoverable"
        bad = await client.request({"type": "history", "channel": "room-1", "since": [1]})
        assert bad["code"] == "invalid_message"


@pytest.mark.gen_test(timeout=30)
async def test_broadcast_and_history_from_js(tmp_path: Path) -> None:
    files = {"chat": {"api/rt.js": HANDLER}}
    async with realtime_kernel(tmp_path, {"chat": ROOMS}, files=files) as rt:
        url = rt.running.url("chat", "/api/rt")
        result = await call(url, {"op": "broadcast", "channel": "room-1", "data": {"n": 1}})
        assert set(result) == {"offset", "epoch"} and result["offset"] == 1
        # Elsewhere it resolves as before: null (a host call's None).
        assert await call(url, {"op": "broadcast", "channel": "plain", "data": 1}) is None
        history = await call(url, {"op": "history", "channel": "room-1", "options": {"limit": 5}})
        assert history["epoch"] == result["epoch"] and history["offset"] == 1
        assert [p["data"] for p in history["publications"]] == [{"n": 1}]
        since = await call(
            url, {"op": "history", "channel": "room-1", "options": {"since": result}}
        )
        assert since["publications"] == []
        assert await call(url, {"op": "bad", "errors": True}) == [
            "fazt.realtime.history: channel has no history (its app.json rule has none)",
            "fazt.realtime.history: since is not recoverable: those publications are gone "
            "or the epoch changed",
            "fazt.realtime.history: limit must be a positive integer",
            "fazt.realtime.history: options must be an object {limit} or {since}",
        ]
