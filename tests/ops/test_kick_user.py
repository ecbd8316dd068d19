"""Kicking a user: every connection of theirs on every node, from the API and from JS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import tornado.httpclient

from fazt.realtime.backplane.node import MemoryNetwork, memory_backplane
from tests.realtime.world import TOKENS, claims, make_app, make_world
from tests.realtime.wsclient import realtime_kernel

HANDLER = """
module.exports = async (req) => {
  const attempts = [];
  for (const target of req.json.targets) {
    try { attempts.push(await fazt.realtime.kick(target)); }
    catch (e) { attempts.push(e.message); }
  }
  return {json: attempts};
};
"""


@pytest.mark.gen_test
async def test_a_users_connections_are_kicked_on_every_node() -> None:
    network = MemoryNetwork()
    w1 = await make_world(backplane=memory_backplane(network, "n1"))
    w2 = await make_world(backplane=memory_backplane(network, "n2"))
    app = make_app()
    on_1, t1 = await w1.connect(app, claims("alice"))
    on_2, t2 = await w2.connect(app, claims("alice"))
    bob, t_bob = await w2.connect(app, claims("bob"))
    # Anonymous at first, then alice through an ``auth`` message: found too.
    late, t_late = await w2.connect(app)
    await w2.send(late, {"type": "auth", "token": TOKENS.issue("alice")})
    assert await w1.core.api(app).kick_user("alice", "bye") == 3
    for _ in range(100):  # the other node's kicks arrive through the bus
        if t2.closed_with and t_late.closed_with:
            break
        await asyncio.sleep(0.01)
    for transport in (t1, t2, t_late):
        assert transport.closed_with == (4003, "kicked")
        assert {"type": "kicked", "reason": "bye"} in transport.take()
    assert t_bob.closed_with is None
    for world, session in ((w1, on_1), (w2, on_2), (w2, late)):
        await world.disconnect(session)
    assert await w1.core.api(app).kick_user("alice") == 0
    assert not bob.closed


@pytest.mark.gen_test(timeout=30)
async def test_kick_from_js_by_user_by_client_and_the_refusals(tmp_path: Path) -> None:
    files = {"chat": {"api/kick.js": HANDLER}}
    async with realtime_kernel(tmp_path, {"chat": {}}, files=files) as rt:
        alice = [await rt.client("chat", rt.token("alice")) for _ in range(2)]
        bob = await rt.client("chat", rt.token("bob"))
        targets = [
            {"user": "alice"},
            bob.client_id,
            {"clientId": "nobody"},
            "nobody",
            {"user": ""},
            {"user": "a", "clientId": "b"},
            {"nothing": 1},
        ]
        response = await tornado.httpclient.AsyncHTTPClient().fetch(
            rt.running.url("chat", "/api/kick"),
            method="POST",
            body=json.dumps({"targets": targets}),
        )
        assert json.loads(response.body) == [
            2,
            True,
            0,
            False,
            "fazt.realtime.kick: user must be a non-empty string (the user's token sub)",
            'fazt.realtime.kick: give exactly one of {"clientId": id} or {"user": id}',
            'fazt.realtime.kick: give exactly one of {"clientId": id} or {"user": id}',
        ]
        for client in (*alice, bob):
            assert (await client.expect_close())[0] == 4003
