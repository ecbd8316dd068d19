"""examples/chat's realtime hooks (api/_realtime.js) through a real kernel and real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.binary import run_fazt
from tests.examples.clients import RealtimeClient
from tests.examples.conftest import EXAMPLES_DIR, examples_kernel


async def rejection(client: RealtimeClient) -> dict[str, str]:
    frame = await client.recv()
    assert frame["type"] == "error", frame
    return {"code": frame["code"], "error": frame["error"], "channel": frame["channel"]}


@pytest.mark.gen_test(timeout=30)
async def test_messages_typed_on_the_page_are_checked_trimmed_and_signed(
    tmp_path: Path,
) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        alice_token = await chat.login("Alice")
        async with chat.socket(alice_token) as alice, chat.socket() as reader:
            for client in (alice, reader):
                assert (await client.subscribe("room-general"))["type"] == "subscribed"
            await alice.send(
                {"type": "message", "channel": "room-general", "data": {"text": "  hi all  "}}
            )
            message = await reader.next_message()
            assert message["from"] == alice.hello["clientId"]
            data = message["data"]
            assert (data["user"], data["text"]) == ({"id": "alice", "name": "Alice"}, "hi all")
            assert isinstance(data["timestamp"], int)

            # A name in the data is ignored: the hook stamps the author from the token.
            forged = {"text": "it was bob", "user": {"id": "bob", "name": "Bob"}}
            await alice.send({"type": "message", "channel": "room-general", "data": forged})
            assert (await reader.next_message())["data"]["user"]["id"] == "alice"

            for bad, reason in [
                ({"text": "   "}, "an empty message is not sent"),
                (
                    {"text": "x" * 501},
                    "a message may have at most 500 characters (this one has 501)",
                ),
                ("just a string", "an empty message is not sent"),
            ]:
                await alice.send({"type": "message", "channel": "room-general", "data": bad})
                assert await rejection(alice) == {
                    "code": "rejected",
                    "error": reason,
                    "channel": "room-general",
                }
            await alice.send(
                {"type": "message", "channel": "room-general", "data": {"text": "y" * 500}}
            )
            assert (await reader.next_message())["data"]["text"] == "y" * 500

            # Anonymous readers may read a room, not write in it.
            await reader.send(
                {"type": "message", "channel": "room-general", "data": {"text": "hi"}}
            )
            assert await rejection(reader) == {
                "code": "rejected",
                "error": "sign in to chat",
                "channel": "room-general",
            }


@pytest.mark.gen_test(timeout=30)
async def test_joins_and_leaves_are_system_lines_once_per_user(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        token = await chat.login("Alice Smith")
        async with chat.socket() as reader:
            await reader.subscribe("room-general")
            async with chat.socket(token) as tab1:
                await tab1.subscribe("presence-room-general")
                joined = await reader.next_message()
                assert joined["data"]["system"] is True
                assert joined["data"]["text"] == "Alice Smith joined"
                async with chat.socket(token) as tab2:  # a second tab: no second line
                    await tab2.subscribe("presence-room-general")
                # The first tab is still open: no "left" yet. A marker proves it.
                status, _ = await chat.call(
                    "chat", {"channel": "room-general", "message": "marker"}, token
                )
                assert status == 200
                assert (await reader.next_message())["data"]["text"] == "marker"
            left = await reader.next_message()
            assert (left["data"]["system"], left["data"]["text"]) == (True, "Alice Smith left")


@pytest.mark.gen_test(timeout=30)
async def test_room_team_is_invite_only(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, _poll):
        alice, carol = await chat.login("Alice"), await chat.login("Carol")
        async with chat.socket(alice) as invited, chat.socket(carol) as outsider:
            for channel in ("room-team", "presence-room-team"):
                assert (await invited.subscribe(channel))["type"] == "subscribed"
                refused = await outsider.subscribe(channel)
                assert (refused["code"], refused["error"]) == (
                    "forbidden",
                    'room "team" is invite-only',
                )
        async with chat.socket() as anonymous:
            assert (await anonymous.subscribe("room-team"))["code"] == "unauthorized"
        # The HTTP handler keeps the same rules.
        body = {"channel": "room-team", "message": "hi"}
        assert (await chat.call("chat", body, carol))[0] == 403
        assert (await chat.call("chat", body, alice))[0] == 200
        assert (await chat.call("chat", {**body, "message": "x" * 501}, alice))[0] == 400


def test_fazt_check_finds_every_hook_the_examples_name(tmp_path: Path) -> None:
    done = run_fazt("check", str(EXAMPLES_DIR), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 error(s)" in done.stdout
