"""Values strict UTF-8 JSON cannot carry, refused where they enter, over real sockets.

The incident: a login handler passed ``{"name": "\\ud800"}`` (a lone surrogate)
to ``fazt.auth.issueToken``. Every connection with that token that joined
``presence-lobby`` leaked one connection when it left, other members never got
``subscribed``/``members`` while it was there, and client ``data`` of
``"\\ud800"`` or ``1e400`` got no answer but a traceback per message.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient

from tests.realtime.wsclient import Realtime, hs256_token, realtime_kernel, upgrade_status

APPS = {"chat": {"realtime": {"channels": {"talk": {"publish": True}}}}}

HANDLER = """
module.exports = async (req) => {
  const rt = fazt.realtime;
  const b = req.json || {};
  const attempt = async (call) => {
    try { return {ok: await call()}; } catch (e) { return {error: e.message}; }
  };
  switch (b.op) {
    case 'count': return {json: {count: await rt.count()}};
    case 'hostile': return {json: {results: [
      await attempt(() => rt.broadcast('talk', {user: {name: '\\ud800'}})),
      await attempt(() => rt.broadcastAll(['ok', '\\udc00'])),
      await attempt(() => rt.broadcast('talk', {['key\\ud800']: 1})),
      await attempt(() => rt.kick(b.clientId, 'bye \\ud83d')),
      await attempt(() => rt.kick('\\ud800', 'bye')),
      await attempt(() => rt.broadcast('talk', {fine: '\\ud83d\\ude00'})),
    ]}};
  }
  return {status: 400, json: {error: 'unknown op'}};
};
"""


def signed(rt: Realtime, payload: str) -> str:
    """A token of the kernel's secret over exactly ``payload`` (JSON text written by hand)."""
    return hs256_token(rt.kernel.tokens._secret, payload)


def hostile_tokens(rt: Realtime) -> dict[str, str]:
    exp = int(time.time()) + 600
    return {
        "name with a lone surrogate": signed(rt, f'{{"sub":"m","exp":{exp},"name":"\\ud800"}}'),
        "info with a lone surrogate": signed(
            rt, f'{{"sub":"m","exp":{exp},"info":{{"bio":"\\udfff"}}}}'
        ),
        "info key with a lone surrogate": signed(
            rt, f'{{"sub":"m","exp":{exp},"info":{{"\\ud800":1}}}}'
        ),
        "sub with a lone surrogate": signed(rt, f'{{"sub":"\\ud800","exp":{exp}}}'),
        "info number 1e400": signed(rt, f'{{"sub":"m","exp":{exp},"info":{{"n":1e400}}}}'),
        "info Infinity": signed(rt, f'{{"sub":"m","exp":{exp},"info":{{"n":-Infinity}}}}'),
        "unknown claim NaN": signed(rt, f'{{"sub":"m","exp":{exp},"x":NaN}}'),
        "exp 1e400": signed(rt, '{"sub":"m","exp":1e400}'),
    }


async def run_handler(rt: Realtime, body: dict[str, Any]) -> Any:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        rt.running.url("chat", "/api/rt"), method="POST", body=json.dumps(body)
    )
    return json.loads(response.body)


def fazt_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and record.name.startswith(("fazt", "tornado"))
    ]


@pytest.mark.gen_test(timeout=30)
async def test_client_data_strict_json_cannot_carry_is_invalid_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with realtime_kernel(tmp_path, APPS) as rt:
        sender = await rt.client("chat")
        watcher = await rt.client("chat")
        for client in (sender, watcher):
            await client.subscribe("talk")
        frames = [
            '{"type":"message","channel":"talk","data":"\\ud800"}',
            '{"type":"message","channel":"talk","data":1e400}',
            '{"type":"message","channel":"talk","data":{"n":[-1e400]}}',
            '{"type":"message","channel":"talk","data":{"\\udc00":true}}',
            '{"type":"subscribe","channel":"talk","note":"\\udbff"}',
            b'{"type":"message","channel":"talk","data":"\xed\xa0\x80"}',  # binary frame
        ]
        for frame in frames:
            reply = await sender.request(frame)
            assert reply["type"] == "error" and reply["code"] == "invalid_json", (frame, reply)
            assert reply["error"].startswith("frame is not strict JSON: a ")
        # The connection stayed open and works; the watcher saw none of it.
        await sender.send({"type": "message", "channel": "talk", "data": "\U0001f600 fine"})
        assert (await watcher.recv())["data"] == "\U0001f600 fine"
        assert await sender.request({"type": "ping"}) == {"type": "pong"}
    assert fazt_errors(caplog) == []


@pytest.mark.gen_test(timeout=30)
async def test_tokens_with_unencodable_claims_get_401_and_unauthorized(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, APPS) as rt:
        anonymous = await rt.client("chat")
        for name, token in hostile_tokens(rt).items():
            assert await upgrade_status(f"{rt.url('chat')}?token={token}") == 401, name
            reply = await anonymous.request({"type": "auth", "token": token})
            assert reply["type"] == "error" and reply["code"] == "unauthorized", (name, reply)
        # Still anonymous, still served.
        denied = await anonymous.request({"type": "subscribe", "channel": "presence-lobby"})
        assert denied["code"] == "unauthorized"
        assert await anonymous.request({"type": "ping"}) == {"type": "pong"}


@pytest.mark.gen_test(timeout=60)
async def test_the_incident_no_leak_and_presence_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {"chat": {"api/rt.js": HANDLER}}
    async with realtime_kernel(
        tmp_path, APPS, files=files, realtime={"shutdownGraceSeconds": 5}
    ) as rt:
        honest = await rt.client("chat", rt.token("ann", name="Ann"))
        joined = await honest.subscribe("presence-lobby")
        assert joined["members"] == [{"id": "ann", "name": "Ann"}]
        exp = int(time.time()) + 600
        bad = signed(rt, f'{{"sub":"mallory","exp":{exp},"name":"\\ud800"}}')
        url = f"{rt.url('chat')}?token={bad}"
        for _ in range(30):
            assert await upgrade_status(url) == 401
        for _ in range(30):  # the same token through an auth message
            client = await rt.client("chat")
            assert (await client.request({"type": "auth", "token": bad}))["code"] == "unauthorized"
            denied = await client.request({"type": "subscribe", "channel": "presence-lobby"})
            assert denied["code"] == "unauthorized"
            await client.close()
            rt.clients.remove(client)
        # Another honest user still gets subscribed with the real member list ...
        ben = await rt.client("chat", rt.token("ben", name="Ben"))
        reply = await ben.subscribe("presence-lobby")
        assert reply["members"] == [{"id": "ann", "name": "Ann"}, {"id": "ben", "name": "Ben"}]
        assert (await honest.recv())["event"] == "join"
        # ... and nothing leaked: two connections, whatever came and went.
        assert (await run_handler(rt, {"op": "count"})) == {"count": 2}
        await ben.close()
        await honest.close()
        rt.clients.clear()
        plugin = rt.plugin
        started = time.monotonic()
    # No ghost session: the stop did not wait for its 5 s grace.
    assert time.monotonic() - started < 3
    assert plugin._core is None
    assert fazt_errors(caplog) == []


@pytest.mark.gen_test(timeout=30)
async def test_fazt_realtime_refuses_unencodable_arguments_with_a_clear_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {"chat": {"api/rt.js": HANDLER}}
    async with realtime_kernel(tmp_path, APPS, files=files) as rt:
        watcher = await rt.client("chat")
        await watcher.subscribe("talk")
        reply = await run_handler(rt, {"op": "hostile", "clientId": watcher.client_id})
        assert reply["results"] == [
            {
                "error": "fazt.realtime.broadcast: data must be strict JSON: "
                "a string that is not valid Unicode (lone surrogate) at data.user.name"
            },
            {
                "error": "fazt.realtime.broadcastAll: data must be strict JSON: "
                "a string that is not valid Unicode (lone surrogate) at data[1]"
            },
            {
                "error": "fazt.realtime.broadcast: data must be strict JSON: a key that "
                'is not valid Unicode (lone surrogate) at data["key\\ud800"]'
            },
            {
                "error": "fazt.realtime.kick: reason must be strict JSON: "
                "a string that is not valid Unicode (lone surrogate) at reason"
            },
            {"ok": False},  # no client has such an id
            {"ok": None},
        ]
        # Only the last broadcast went out, and the watcher was not kicked.
        assert (await watcher.recv())["data"] == {"fine": "\U0001f600"}
        assert await watcher.request({"type": "ping"}) == {"type": "pong"}
    assert fazt_errors(caplog) == []
