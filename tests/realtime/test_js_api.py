"""``fazt.realtime`` from an ``api/*.js`` handler, end to end through a real kernel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tornado.httpclient

from tests.realtime.wsclient import post_json, realtime_kernel

HANDLER = """
module.exports = async (req) => {
  const rt = fazt.realtime;
  const body = req.json || {};
  switch (body.op) {
    case 'broadcast': return {json: {result: await rt.broadcast(body.channel, body.data)}};
    case 'broadcastAll': return {json: {result: await rt.broadcastAll(body.data)}};
    case 'subscribers': return {json: {result: await rt.subscribers(body.channel)}};
    case 'count': return {json: {result: body.channel === undefined
        ? await rt.count() : await rt.count(body.channel)}};
    case 'kick': return {json: {result: await rt.kick(body.clientId, body.reason)}};
    case 'bad': {
      const errors = [];
      const attempts = [
        () => rt.broadcast(42, 'x'),
        () => rt.broadcast('bad name!', 'x'),
        () => rt.broadcast('c', 'x'.repeat(70000)),
        () => rt.subscribers(),
        () => rt.count(7),
        () => rt.kick(null, 'r'),
        () => rt.kick('id', 5),
      ];
      for (const attempt of attempts) {
        try { await attempt(); errors.push(null); } catch (e) { errors.push(e.message); }
      }
      return {json: {errors}};
    }
  }
  return {status: 400, json: {error: 'unknown op'}};
};
"""


call = post_json


@pytest.mark.gen_test(timeout=30)
async def test_every_fazt_realtime_function_from_js(tmp_path: Path) -> None:
    files = {"chat": {"api/rt.js": HANDLER}, "other": {"api/rt.js": HANDLER}}
    async with realtime_kernel(tmp_path, {"chat": {}, "other": {}}, files=files) as rt:
        url = rt.running.url("chat", "/api/rt")
        other_url = rt.running.url("other", "/api/rt")
        alice = await rt.client("chat", rt.token("alice", name="Alice"))
        await alice.subscribe("news")
        stranger = await rt.client("other")
        await stranger.subscribe("news")

        assert await call(url, {"op": "broadcast", "channel": "news", "data": {"n": 1}}) == {
            "result": None
        }
        message = await alice.recv()
        assert message["channel"] == "news" and message["data"] == {"n": 1}
        assert await call(url, {"op": "broadcastAll", "data": "all"}) == {"result": None}
        assert (await alice.recv())["data"] == "all"
        assert await stranger.nothing_within(0.1)  # the other app heard nothing

        subscribers = (await call(url, {"op": "subscribers", "channel": "news"}))["result"]
        assert [entry["clientId"] for entry in subscribers] == [alice.client_id]
        assert subscribers[0]["metadata"]["name"] == "Alice"
        assert (await call(url, {"op": "count", "channel": "news"}))["result"] == 1
        assert (await call(url, {"op": "count"}))["result"] == 1
        assert (await call(other_url, {"op": "count"}))["result"] == 1

        # Scoped: the other app cannot kick alice, her own app can.
        kick = {"op": "kick", "clientId": alice.client_id, "reason": "bye"}
        assert (await call(other_url, kick))["result"] is False
        assert (await call(url, kick))["result"] is True
        code, seen = await alice.expect_close()
        assert (code, seen) == (4003, [{"type": "kicked", "reason": "bye"}])

        errors = (await call(url, {"op": "bad"}))["errors"]
        errors[2] = re.sub(r"message is \d+ bytes", "message is N bytes", errors[2])
        assert errors == [
            "fazt.realtime.broadcast: channel must be a string",
            "fazt.realtime.broadcast: invalid channel name",
            "fazt.realtime.broadcast: message is N bytes, over the 65536-byte limit",
            "fazt.realtime.subscribers: channel is required",
            "fazt.realtime.count: channel must be a string",
            "fazt.realtime.kick: clientId is required",
            "fazt.realtime.kick: reason must be a string",
        ]


POSTING = """
module.exports = async (req) => {
  const body = req.json || {};
  for (const n of [1, 2, 3]) await fazt.realtime.broadcast(body.channel, {n});
  await fazt.realtime.broadcastAll('all');
  if (body.fail) throw new Error('failed after broadcasting');
  return {json: {count: await fazt.realtime.count(body.channel)}};
};
"""


@pytest.mark.gen_test(timeout=30)
async def test_broadcasts_from_js_go_out_in_order_even_when_the_handler_then_fails(
    tmp_path: Path,
) -> None:
    files = {"chat": {"api/post.js": POSTING}}
    async with realtime_kernel(tmp_path, {"chat": {}}, files=files) as rt:
        url = rt.running.url("chat", "/api/post")
        alice = await rt.client("chat")
        await alice.subscribe("news")

        # The count after four posted broadcasts: they went out before it ran.
        assert await call(url, {"channel": "news"}) == {"count": 1}
        messages = await alice.recv_many(4)
        assert [m["data"] for m in messages] == [{"n": 1}, {"n": 2}, {"n": 3}, "all"]

        with pytest.raises(tornado.httpclient.HTTPClientError) as failed:
            await call(url, {"channel": "news", "fail": True})
        assert failed.value.code == 500
        messages = await alice.recv_many(4)
        assert [m["data"] for m in messages] == [{"n": 1}, {"n": 2}, {"n": 3}, "all"]

        # A refusal found on the worker rejects with the usual sentence.
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await call(url, {"channel": "bad name!"})
        assert json.loads(refused.value.response.body) == {
            "error": "fazt.realtime.broadcast: invalid channel name"
        }
        assert await alice.nothing_within(0.1)
