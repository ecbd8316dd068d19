"""Realtime hooks through a real kernel over real sockets: config, schema and the wire."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from fazt.config import ConfigError
from fazt.kernel.kernel import Kernel
from fazt.realtime import hook_verdicts
from tests.harness import make_app
from tests.realtime.wsclient import realtime_kernel

HOOKS = """
const INVITED = ['alice'];
exports.onSubscribe = ({ channel, user }) =>
  channel !== 'club' || (user !== null && INVITED.includes(user.id))
    ? true
    : { allow: false, reason: 'the club is invite-only' };
exports.onPublish = ({ data, user }) => {
  if (typeof data.text !== 'string' || !data.text.trim()) return { reject: 'say something' };
  if (data.text === 'spin') for (;;) {}
  return { data: { text: data.text.trim(), by: user ? user.id : 'anonymous' } };
};
exports.onJoin = async ({ channel, member }) => {
  await fazt.realtime.broadcast('lobby', { system: true, text: member.id + ' joined' });
};
"""

MANIFEST: dict[str, Any] = {
    "realtime": {
        "channels": {
            "club": {"hooks": ["subscribe"]},
            "lobby": {"publish": True, "hooks": ["publish"]},
            "presence-lobby": {"hooks": ["presence"]},
        }
    }
}


@pytest.mark.gen_test(timeout=30)
async def test_hooks_decide_and_react_over_the_wire(tmp_path: Path) -> None:
    files = {"chat": {"api/_realtime.js": HOOKS}}
    async with realtime_kernel(
        tmp_path, {"chat": MANIFEST}, realtime={"hooks": {"timeLimitMs": 300}}, files=files
    ) as rt:
        alice = await rt.client("chat", rt.token("alice"))
        bob = await rt.client("chat", rt.token("bob"))
        assert await alice.request({"type": "subscribe", "channel": "club"}) == {
            "type": "subscribed",
            "channel": "club",
        }
        assert await bob.request({"type": "subscribe", "channel": "club"}) == {
            "type": "error",
            "code": "forbidden",
            "error": "the club is invite-only",
            "channel": "club",
        }
        await alice.subscribe("lobby")
        await bob.subscribe("lobby")
        # onPublish rewrites: bob gets alice's message trimmed and signed by the hook.
        await alice.send({"type": "message", "channel": "lobby", "data": {"text": "  hi  "}})
        message = await bob.recv()
        assert (message["data"], message["from"]) == (
            {"text": "hi", "by": "alice"},
            alice.client_id,
        )
        # ...and rejects: the sender gets `rejected` with the hook's reason.
        await alice.send({"type": "message", "channel": "lobby", "data": {"text": "   "}})
        assert await alice.recv() == {
            "type": "error",
            "code": "rejected",
            "error": "say something",
            "channel": "lobby",
        }
        # A hook over realtime.hooks.timeLimitMs is stopped, and the message rejected.
        started = time.monotonic()
        await alice.send({"type": "message", "channel": "lobby", "data": {"text": "spin"}})
        assert await alice.recv() == {
            "type": "error",
            "code": "rejected",
            "error": hook_verdicts.PUBLISH_FAILED,
            "channel": "lobby",
        }
        assert time.monotonic() - started < 3
        assert await bob.nothing_within(0.1)
        # onJoin broadcasts with fazt.realtime: a system line in the lobby.
        await alice.subscribe("presence-lobby")
        assert (await bob.recv())["data"] == {"system": True, "text": "alice joined"}
        assert (await alice.recv())["data"] == {"system": True, "text": "alice joined"}


@pytest.mark.gen_test(timeout=20)
async def test_the_hooks_module_is_never_an_http_route_nor_a_file(tmp_path: Path) -> None:
    files = {"chat": {"api/_realtime.js": HOOKS, "index.html": "<p>hi</p>"}}
    async with realtime_kernel(tmp_path, {"chat": MANIFEST}, files=files) as rt:
        client = AsyncHTTPClient()
        for path in ("/api/_realtime", "/api/_realtime.js", "/api/_realtime.js/", "/api/_lib"):
            response = await client.fetch(rt.running.url("chat", path), raise_error=False)
            assert response.code == 404, (path, response.code)
        response = await client.fetch(rt.running.url("chat", "/index.html"))
        assert response.code == 200


@pytest.mark.parametrize(
    "hooks",
    [
        {"timeLimitMs": 0},
        {"timeLimitMs": 1.5},
        {"vacatedDelaySeconds": -1},
        {"maxPendingPerApp": 0},
        {"timeLimit": 1000},
    ],
)
@pytest.mark.gen_test
async def test_bad_hook_settings_are_refused(tmp_path: Path, hooks: dict[str, Any]) -> None:
    make_app(tmp_path / "apps", "chat")
    kernel = Kernel(
        tmp_path / "apps", data_dir=tmp_path / "data", config={"realtime": {"hooks": hooks}}
    )
    with pytest.raises(ConfigError, match="hooks"):
        await kernel.start(port=0)
    await kernel.stop()


@pytest.mark.parametrize("hooks", [["publsh"], "publish", ["publish", "publish"], [1]])
@pytest.mark.gen_test
async def test_a_rule_naming_an_unknown_hook_kind_keeps_the_app_out(
    tmp_path: Path, hooks: Any
) -> None:
    manifest = {"realtime": {"channels": {"room": {"hooks": hooks}}}}
    async with realtime_kernel(tmp_path, {"chat": manifest, "other": {}}) as rt:
        assert rt.kernel.apps.by_slug("chat") is None
        assert rt.kernel.apps.by_slug("other") is not None
        (error,) = rt.kernel.manifest_errors
        assert error.json_path.startswith("$.realtime.channels.room.hooks"), error.json_path
