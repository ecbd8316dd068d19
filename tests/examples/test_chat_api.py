"""examples/chat through a real kernel: login, room broadcasts, presence, DMs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.examples.conftest import examples_kernel


@pytest.mark.gen_test(timeout=20)
async def test_chat_broadcasts_to_room_subscribers(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        token = await chat.login("Alice Smith")
        async with chat.socket() as listener:  # anonymous: rooms are public
            assert (await listener.subscribe("room-general"))["type"] == "subscribed"

            status, reply = await chat.call(
                "chat", {"channel": "room-general", "message": "  hi all "}, token
            )

            assert (status, reply) == (200, {"sent": True})
            message = await listener.next_message()
            assert message["channel"] == "room-general"
            data = message["data"]
            assert data["user"] == {"id": "alice-smith", "name": "Alice Smith"}
            assert data["text"] == "hi all"
            assert isinstance(data["timestamp"], int)


@pytest.mark.gen_test(timeout=20)
async def test_chat_refuses_bad_requests_with_clear_errors(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        token = await chat.login("Alice")
        ok = {"channel": "room-general", "message": "hi"}
        cases = [
            (None, ok, 401),  # not signed in
            (token, {**ok, "channel": "private-user-bob"}, 400),  # not a room: no DM spoofing
            (token, {**ok, "channel": "presence-room-general"}, 400),
            (token, {**ok, "channel": "room-" + "x" * 41}, 400),
            (token, {**ok, "message": ""}, 400),
            (token, {**ok, "message": "   "}, 400),
            (token, {**ok, "message": 42}, 400),
            (token, {**ok, "message": "x" * 1001}, 400),
            (token, {"channel": "room-general"}, 400),
            (token, ["not", "an", "object"], 400),
        ]
        for case_token, body, expected in cases:
            status, reply = await chat.call("chat", body, case_token)
            assert status == expected, (body, reply)
            assert isinstance(reply["error"], str) and reply["error"]
        status, _reply = await chat.call("chat", None, token)  # GET
        assert status == 405


@pytest.mark.gen_test(timeout=20)
async def test_login_validates_the_name(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        for name in ["", "   ", "x" * 33, "<script>", 7, None]:
            status, reply = await chat.call("login", {"name": name})
            assert status == 400, (name, reply)
            assert "name" in reply["error"]
        status, _reply = await chat.call("login", None)  # GET
        assert status == 405


@pytest.mark.gen_test(timeout=20)
async def test_presence_channel_needs_sign_in_and_lists_members(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        alice, bob = await chat.login("Alice"), await chat.login("Bob")
        async with chat.socket() as anonymous:
            refused = await anonymous.subscribe("presence-room-general")
            assert (refused["type"], refused["code"]) == ("error", "unauthorized")
        async with chat.socket(alice) as a, chat.socket(bob) as b:
            await a.subscribe("presence-room-general")
            joined = await b.subscribe("presence-room-general")
            assert joined["type"] == "subscribed"
            assert sorted(m["id"] for m in joined["members"]) == ["alice", "bob"]
            assert {m["id"]: m["name"] for m in joined["members"]}["alice"] == "Alice"


@pytest.mark.gen_test(timeout=20)
async def test_direct_message_reaches_only_the_recipient(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        alice, bob, carol = [await chat.login(n) for n in ("Alice", "Bob", "Carol")]
        async with chat.socket(bob) as b, chat.socket(carol) as c, chat.socket(alice) as a:
            assert (await b.subscribe("private-user-bob"))["type"] == "subscribed"
            assert (await c.subscribe("private-user-carol"))["type"] == "subscribed"
            assert (await c.subscribe("room-general"))["type"] == "subscribed"
            assert (await a.subscribe("private-user-alice"))["type"] == "subscribed"

            status, _ = await chat.call("dm", {"to": "bob", "message": "psst"}, alice)
            assert status == 200
            # A room message after the DM: frames arrive in order on a connection,
            # so if Carol's next message is this marker, the DM never reached her.
            await chat.call("chat", {"channel": "room-general", "message": "marker"}, alice)

            dm = await b.next_message()
            assert dm["channel"] == "private-user-bob"
            assert dm["data"]["from"] == {"id": "alice", "name": "Alice"}
            assert dm["data"]["to"] == {"id": "bob", "name": "Bob"}  # Bob is online
            assert dm["data"]["text"] == "psst"
            copy = await a.next_message()  # the sender's own copy
            assert copy["channel"] == "private-user-alice"
            assert copy["data"]["text"] == "psst"
            seen_by_carol = await c.next_message()
            assert seen_by_carol["channel"] == "room-general"
            assert seen_by_carol["data"]["text"] == "marker"
            # Nobody subscribed to dave's channel: the id stands in for the name.
            await chat.call("dm", {"to": "dave", "message": "later"}, alice)
            offline = await a.next_message()
            assert offline["data"]["to"] == {"id": "dave", "name": "dave"}


@pytest.mark.gen_test(timeout=20)
async def test_dm_refuses_bad_requests(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        token = await chat.login("Alice")
        for body, case_token, expected in [
            ({"to": "bob", "message": "hi"}, None, 401),
            ({"to": "Bob Smith", "message": "hi"}, token, 400),
            ({"to": "bob:other", "message": "hi"}, token, 400),
            ({"to": "", "message": "hi"}, token, 400),
            ({"to": "bob", "message": ""}, token, 400),
            ({"message": "hi"}, token, 400),
        ]:
            status, reply = await chat.call("dm", body, case_token)
            assert status == expected, (body, reply)
            assert reply["error"]


@pytest.mark.gen_test(timeout=20)
async def test_nobody_else_can_subscribe_to_a_users_dm_channel(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        bob, carol = await chat.login("Bob"), await chat.login("Carol")
        async with chat.socket() as anonymous, chat.socket(carol) as c, chat.socket(bob) as b:
            refused = await anonymous.subscribe("private-user-bob")
            assert (refused["type"], refused["code"]) == ("error", "unauthorized")
            refused = await c.subscribe("private-user-bob")
            assert (refused["type"], refused.get("code")) == ("error", "forbidden")
            assert (await b.subscribe("private-user-bob"))["type"] == "subscribed"
