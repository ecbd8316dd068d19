"""The admin API over real sockets: the token, every endpoint, every refusal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.ops.support import TOKEN, admin_kernel

APPS = {
    "chat": {"realtime": {"channels": {"room-*": {"publish": True}, "presence-*": {"auth": True}}}},
    "poll": {},
}

API_CALLS = [
    ("GET", "/admin/apps"),
    ("GET", "/admin/overview"),
    ("GET", "/admin/apps/chat/channels"),
    ("GET", "/admin/apps/chat/channels/room-1"),
    ("POST", "/admin/apps/chat/kick"),
    ("POST", "/admin/apps/chat/broadcast"),
    ("GET", "/admin/apps/nope/channels"),
    ("GET", "/admin/no-such-endpoint"),
]


@pytest.mark.gen_test(timeout=30)
async def test_every_api_call_needs_the_token(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        for method, path in API_CALLS:
            for token in (None, "wrong-token", TOKEN[:-1], TOKEN + "x", ""):
                status, body = await admin.fetch(path, method=method, token=token)
                assert status == 401, (method, path, token)
                assert body == {
                    "error": "missing or wrong admin token (Authorization: Bearer <token>)"
                }
        status, _ = await admin.fetch("/admin/apps", token=TOKEN)
        assert status == 200
        # Not the admin API: scrapers, probes and the page itself need no token.
        for path in ("/metrics", "/healthz", "/readyz", "/admin/", "/admin/assets/dashboard.js"):
            status, _ = await admin.fetch(path, token=None)
            assert status == 200, path


@pytest.mark.gen_test(timeout=30)
async def test_apps_channels_and_one_channel(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        rt = admin.rt
        assert await admin.get("/admin/apps") == [
            {"slug": "chat", "uuid": rt.app("chat").uuid, "connections": 0, "channels": 0},
            {"slug": "poll", "uuid": rt.app("poll").uuid, "connections": 0, "channels": 0},
        ]
        alice = await rt.client("chat", rt.token("alice", name="Alice"))
        alice2 = await rt.client("chat", rt.token("alice", name="Alice"))
        bob = await rt.client("chat", rt.token("bob"))
        anonymous = await rt.client("chat")
        for client in (alice, alice2, bob, anonymous):
            await client.subscribe("room-busy")
        for client in (alice, bob):
            await client.subscribe("room-quiet")
        for client in (alice, alice2, bob):
            await client.subscribe("presence-lobby")
        await rt.client("poll")

        apps = await admin.get("/admin/apps")
        assert [(a["slug"], a["connections"], a["channels"]) for a in apps] == [
            ("chat", 4, 3),
            ("poll", 1, 0),
        ]
        assert await admin.get("/admin/apps/chat/channels") == [
            {"channel": "room-busy", "subscribers": 4},
            {"channel": "presence-lobby", "subscribers": 3, "members": 2},
            {"channel": "room-quiet", "subscribers": 2},
        ]
        assert await admin.get("/admin/apps/chat/channels?limit=1") == [
            {"channel": "room-busy", "subscribers": 4}
        ]
        assert await admin.get("/admin/apps/chat/channels?limit=0") == []

        quiet = await admin.get("/admin/apps/chat/channels/room-quiet")
        assert quiet == {
            "channel": "room-quiet",
            "subscribers": sorted(
                [
                    {"clientId": alice.client_id, "user": {"id": "alice", "name": "Alice"}},
                    {"clientId": bob.client_id, "user": {"id": "bob"}},
                ],
                key=lambda entry: entry["clientId"],
            ),
        }
        lobby = await admin.get("/admin/apps/chat/channels/presence-lobby")
        assert lobby["members"] == [{"id": "alice", "name": "Alice"}, {"id": "bob"}]
        assert len(lobby["subscribers"]) == 3
        busy = await admin.get("/admin/apps/chat/channels/room-busy")
        assert {"clientId": anonymous.client_id} in busy["subscribers"]
        assert await admin.get("/admin/apps/chat/channels/room-none") == {
            "channel": "room-none",
            "subscribers": [],
        }


@pytest.mark.gen_test(timeout=30)
async def test_kick_a_client_or_every_connection_of_a_user(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        rt = admin.rt
        alice = [await rt.client("chat", rt.token("alice")) for _ in range(2)]
        bob = await rt.client("chat", rt.token("bob"))
        carol = await rt.client("chat", rt.token("carol"))
        other_app_alice = await rt.client("poll", rt.token("alice"))

        assert await admin.post("/admin/apps/chat/kick", {"user": "alice"}) == {"kicked": 2}
        for client in alice:
            code, seen = await client.expect_close()
            assert (code, [m["type"] for m in seen]) == (4003, ["kicked"])
        assert await bob.alive() and await other_app_alice.alive()

        body = {"clientId": bob.client_id, "reason": "spam"}
        assert await admin.post("/admin/apps/chat/kick", body) == {"kicked": 1}
        assert await bob.expect_close() == (4003, [{"type": "kicked", "reason": "spam"}])
        assert await admin.post("/admin/apps/chat/kick", {"clientId": "gone"}) == {"kicked": 0}
        assert await admin.post("/admin/apps/chat/kick", {"user": "nobody"}) == {"kicked": 0}
        assert await carol.alive()


@pytest.mark.gen_test(timeout=30)
async def test_broadcast_to_a_channel_and_to_the_whole_app(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        rt = admin.rt
        subscriber = await rt.client("chat")
        await subscriber.subscribe("room-news")
        bystander = await rt.client("chat")
        body = {"channel": "room-news", "data": {"text": "hello"}}
        assert await admin.post("/admin/apps/chat/broadcast", body) == {"ok": True}
        message = await subscriber.recv()
        assert (message["type"], message["channel"], message["data"]) == (
            "message",
            "room-news",
            {"text": "hello"},
        )
        assert await bystander.nothing_within(0.1)
        assert await admin.post("/admin/apps/chat/broadcast", {"data": [1, 2]}) == {"ok": True}
        for client in (subscriber, bystander):
            received = await client.recv()
            assert (received["type"], "channel" in received, received["data"]) == (
                "message",
                False,
                [1, 2],
            )


@pytest.mark.gen_test(timeout=30)
async def test_bad_requests_get_a_json_error(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        refusals: list[tuple[str, str, object, int, str]] = [
            ("POST", "/admin/apps/chat/kick", {}, 400, 'give exactly one of "clientId" or "user"'),
            ("POST", "/admin/apps/chat/kick", {"user": "a", "clientId": "b"}, 400, "exactly one"),
            ("POST", "/admin/apps/chat/kick", {"user": 5}, 400, "user must be a non-empty"),
            ("POST", "/admin/apps/chat/kick", {"client": "x"}, 400, "unknown field 'client'"),
            ("POST", "/admin/apps/chat/kick", [1], 400, "must be a JSON object"),
            ("POST", "/admin/apps/chat/broadcast", {"channel": "x"}, 400, '"data" is required'),
            ("POST", "/admin/apps/chat/broadcast", {"channel": "bad name", "data": 1}, 400, ""),
            ("GET", "/admin/apps/chat/channels?limit=-1", None, 400, "limit must be"),
            ("GET", "/admin/apps/chat/channels?limit=x", None, 400, "limit must be"),
            ("GET", "/admin/apps/chat/channels/bad%20name", None, 400, "invalid channel name"),
            ("GET", "/admin/apps/nope/channels", None, 404, "unknown app 'nope'"),
            ("POST", "/admin/apps/nope/kick", {"user": "a"}, 404, "unknown app 'nope'"),
            ("GET", "/admin/elsewhere", None, 404, "no such admin path"),
            ("GET", "/admin/apps/chat/kick", None, 405, "method not allowed"),
        ]
        for method, path, body, status, fragment in refusals:
            got_status, got = await admin.fetch(path, method=method, body=body)
            assert got_status == status, (path, body, got)
            assert isinstance(got, dict) and list(got) == ["error"], (path, got)
            assert fragment in got["error"], (path, got)
        for raw in (b"{", b"NaN", b'{"user": "a"'):
            got_status, got = await admin.fetch(
                "/admin/apps/chat/kick", method="POST", raw_body=raw
            )
            assert got_status == 400 and "not valid JSON" in got["error"]


@pytest.mark.gen_test(timeout=30)
async def test_health_readiness_and_the_shutdown(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        assert await admin.fetch("/healthz", token=None) == (200, {"ok": True})
        assert await admin.fetch("/readyz", token=None) == (200, {"ready": True})
        admin.listener.begin_shutdown()
        assert await admin.fetch("/readyz", token=None) == (
            503,
            {"ready": False, "reason": "shutting down"},
        )
        assert await admin.fetch("/healthz", token=None) == (200, {"ok": True})


@pytest.mark.gen_test(timeout=30)
async def test_overview_feeds_the_dashboard(tmp_path: Path) -> None:
    async with admin_kernel(tmp_path, APPS) as admin:
        rt = admin.rt
        client = await rt.client("chat", rt.token("dave"))
        await client.subscribe("room-a")
        await admin.post("/admin/apps/chat/broadcast", {"channel": "room-a", "data": 1})
        await admin.post("/admin/apps/chat/kick", {"user": "dave"})
        overview = await admin.get("/admin/overview")
        assert overview["ready"] is True and overview["workers"] == 1
        assert overview["backplane"] == {"kind": "memory", "up": True, "dropped": 0}
        assert overview["totals"] == {"publications": 1, "deliveries": 1}
        chat = next(app for app in overview["apps"] if app["slug"] == "chat")
        assert chat["busiest"] in ([], [{"channel": "room-a", "subscribers": 1}])
        kicks = [event for event in overview["events"] if event["kind"] == "kick"]
        assert kicks[0]["app"] == "chat" and "dave" in kicks[0]["message"]
        await asyncio.sleep(0)
