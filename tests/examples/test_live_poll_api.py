"""examples/live-poll through a real kernel: votes, the admin channel, announcements."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.examples.conftest import examples_kernel

DEMO_ADMIN_CODE = "demo-admin"  # examples/live-poll/api/_lib/auth.js, demo only


@pytest.mark.gen_test(timeout=20)
async def test_votes_are_tallied_and_broadcast_to_viewers(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        status, first = await poll.call("poll")
        assert status == 200
        assert first["total"] == 0
        option_ids = [option["id"] for option in first["options"]]
        assert set(first["counts"]) == set(option_ids)
        ann, ben = await poll.login("Ann"), await poll.login("Ben")
        async with (
            poll.socket() as viewer,
            poll.socket(ann) as ann_ws,
            poll.socket(ann) as ann_tab2,
            poll.socket(ben) as ben_ws,
        ):
            await viewer.subscribe("poll")

            assert (await ann_ws.subscribe("vote-presence"))["type"] == "subscribed"
            assert (await ann_tab2.subscribe("vote-presence"))["type"] == "subscribed"
            status, reply = await poll.call("vote", {"option": "presence"}, ann)
            assert status == 200
            assert reply["counts"]["presence"] == 1  # two tabs, one user, one vote
            assert reply["viewers"] == 1
            broadcast = await viewer.next_message()
            assert broadcast["channel"] == "poll"
            assert broadcast["data"] == reply

            await ben_ws.subscribe("vote-redis")
            await poll.call("vote", {"option": "redis"}, ben)
            # Ann changes her mind in both tabs, as the page does.
            for ws in (ann_ws, ann_tab2):
                await ws.send({"type": "unsubscribe", "channel": "vote-presence"})
                await ws.subscribe("vote-redis")
            await poll.call("vote", {"option": "redis"}, ann)
            await viewer.next_message()
            last = (await viewer.next_message())["data"]
            assert last["counts"] == {"presence": 0, "dm": 0, "redis": 2, "replay": 0}
            assert last["total"] == 2

        # A live poll: the votes left with their connections.
        _status, final = await poll.call("poll")
        assert final["total"] == 0


@pytest.mark.gen_test(timeout=20)
async def test_vote_needs_the_vote_subscription_and_a_token(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        token = await poll.login("Ann")
        async with poll.socket() as anonymous, poll.socket(token) as ann:
            refused = await anonymous.subscribe("vote-dm")
            assert (refused["type"], refused["code"]) == ("error", "unauthorized")

            status, reply = await poll.call("vote", {"option": "dm"}, token)
            assert status == 409  # not subscribed to vote-dm: nothing to count
            assert "vote-dm" in reply["error"]

            await ann.subscribe("vote-dm")
            assert (await poll.call("vote", {"option": "dm"}, token))[0] == 200


@pytest.mark.gen_test(timeout=20)
async def test_a_user_in_several_vote_channels_counts_for_none(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        token = await poll.login("Mallory")
        async with poll.socket(token) as mallory:
            for option in ("dm", "redis", "replay"):
                await mallory.subscribe(f"vote-{option}")
            status, reply = await poll.call("vote", {"option": "dm"}, token)
            assert status == 200
            assert reply["total"] == 0


@pytest.mark.gen_test(timeout=20)
async def test_vote_refuses_bad_input(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        token = await poll.login("Ann")
        for body, case_token, expected in [
            ({"option": "presence"}, None, 401),
            ({"option": "nope"}, token, 400),
            ({"option": 1}, token, 400),
            ({"option": "__proto__"}, token, 400),
            ({"option": "toString"}, token, 400),
            ({}, token, 400),
            ("presence", token, 400),
        ]:
            status, reply = await poll.call("vote", body, case_token)
            assert status == expected, (body, reply)
            assert reply["error"]
        status, _reply = await poll.call("vote", None, token)  # GET
        assert status == 405


@pytest.mark.gen_test(timeout=20)
async def test_announce_is_admin_only_and_reaches_every_connection(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        user = await poll.login("Ann")
        admin = await poll.login("Ada", adminCode=DEMO_ADMIN_CODE)
        status, reply = await poll.call("login", {"name": "Eve", "adminCode": "guess"})
        assert (status, reply["error"]) == (403, "wrong admin code")

        body = {"message": "Poll closes in 5 minutes"}
        assert (await poll.call("announce", body))[0] == 401
        assert (await poll.call("announce", body, user))[0] == 403
        assert (await poll.call("announce", {"message": ""}, admin))[0] == 400
        assert (await poll.call("announce", {"message": "x" * 281}, admin))[0] == 400

        async with poll.socket() as viewer:  # subscribed to nothing
            status, reply = await poll.call("announce", body, admin)
            assert (status, reply) == (200, {"sent": True})
            announcement = await viewer.next_message()
            assert "channel" not in announcement
            assert announcement["data"]["type"] == "announcement"
            assert announcement["data"]["text"] == "Poll closes in 5 minutes"
            assert announcement["data"]["from"] == "Ada"


@pytest.mark.gen_test(timeout=20)
async def test_admin_channel_is_role_gated_and_carries_the_vote_feed(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        user = await poll.login("Ann")
        admin = await poll.login("Ada", adminCode=DEMO_ADMIN_CODE)
        async with (
            poll.socket() as anonymous,
            poll.socket(user) as u,
            poll.socket(admin) as a,
        ):
            refused = await anonymous.subscribe("admin")
            assert (refused["type"], refused["code"]) == ("error", "unauthorized")
            refused = await u.subscribe("admin")
            assert (refused["type"], refused["code"]) == ("error", "forbidden")
            assert (await a.subscribe("admin"))["type"] == "subscribed"

            await u.subscribe("vote-dm")
            await poll.call("vote", {"option": "dm"}, user)

            feed = await a.next_message()
            assert feed["channel"] == "admin"
            assert feed["data"]["voter"] == {"id": "ann", "name": "Ann"}
            assert feed["data"]["option"] == "dm"


@pytest.mark.gen_test(timeout=20)
async def test_a_chat_login_token_is_refused_by_live_poll(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (chat, poll):
        chat_token = await chat.login("Alice")

        status, reply = await poll.call("vote", {"option": "presence"}, chat_token)
        assert status == 401, reply
        with pytest.raises(InvalidStatus) as refused:
            async with poll.socket(chat_token):
                pass
        assert refused.value.response.status_code == 401

        # ... while chat itself accepts it.
        async with chat.socket(chat_token) as accepted:
            assert accepted.hello["user"]["id"] == "alice"


@pytest.mark.gen_test(timeout=20)
async def test_guests_join_the_audience_but_cannot_vote(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        status, reply = await poll.call("guest", {})
        assert status == 200
        guest = reply["token"]
        async with poll.socket(guest) as g:
            assert g.hello["user"]["id"].startswith("guest-")
            assert g.hello["user"]["name"] == "guest"
            joined = await g.subscribe("presence-poll")
            assert joined["type"] == "subscribed"
            assert [m["name"] for m in joined["members"]] == ["guest"]
            refused = await g.subscribe("vote-dm")  # no "voter" role
            assert (refused["type"], refused["code"]) == ("error", "forbidden")
        status, reply = await poll.call("guest", None)  # GET
        assert status == 405


@pytest.mark.gen_test(timeout=20)
async def test_post_poll_recounts_and_broadcasts(tmp_path: Path) -> None:
    async with examples_kernel(tmp_path / "data") as (_chat, poll):
        ann = await poll.login("Ann")
        _status, guest = await poll.call("guest", {})
        async with poll.socket() as viewer:
            await viewer.subscribe("poll")
            async with poll.socket(ann) as ann_ws:
                await ann_ws.subscribe("vote-dm")
                await poll.call("vote", {"option": "dm"}, ann)
                assert (await viewer.next_message())["data"]["total"] == 1
            # Ann's page closed: her vote is gone, but nobody has said so yet.
            assert (await poll.call("poll", {}))[0] == 401  # a recount needs a token
            status, reply = await poll.call("poll", {}, guest["token"])
            assert status == 200 and reply["total"] == 0 and reply["question"]
            recount = await viewer.next_message()
            assert recount["channel"] == "poll"
            assert recount["data"]["total"] == 0
            assert recount["data"]["counts"]["dm"] == 0
