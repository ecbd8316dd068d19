"""The chat example in real Chromium against ``fazt serve examples/``."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import NewPage, PageErrors
from tests.browser.pages import ChatPage
from tests.browser.server import ExamplesServer

pytestmark = pytest.mark.browser

RECONNECT_TIMEOUT_MS = 30_000


def test_message_from_a_shows_up_in_b(examples_server: ExamplesServer, new_page: NewPage) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    bob.expect_members("alice", "bob")  # both subscribed to the room before anyone talks

    alice.say("hello from alice")

    expect(bob.message("hello from alice")).to_be_visible()
    expect(bob.message("hello from alice").locator(".author")).to_have_text("Alice")
    expect(alice.message("hello from alice")).to_be_visible()

    # User text is shown as text, never parsed as HTML.
    alice.say('<img src="x" onerror="window.pwned = 1"><b>bold</b>')
    expect(bob.message("<b>bold</b>")).to_be_visible()
    expect(bob.page.locator("#messages img, #messages b")).to_have_count(0)
    assert bob.page.evaluate("window.pwned") is None


def test_presence_lists_both_users_and_shows_b_leaving(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob_page = new_page("bob")
    bob = ChatPage(bob_page).open(url).sign_in("Bob")

    alice.expect_members("alice", "bob")
    bob.expect_members("alice", "bob")

    bob_page.close()

    alice.expect_members("alice")


def test_pages_reconnect_by_themselves_after_a_server_restart(
    examples_server: ExamplesServer, new_page: NewPage, page_errors: PageErrors
) -> None:
    # While the server is down the pages' reconnect attempts fail; Chromium
    # reports each refused WebSocket as a console error.
    page_errors.allow("WebSocket connection to")
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    bob.expect_members("alice", "bob")
    alice.say("before the restart")
    expect(bob.message("before the restart")).to_be_visible()
    alice.record_status_changes()
    bob.record_status_changes()

    examples_server.restart()  # same port, same data folder (so the same JWT secret)

    # The SDK backs off with full jitter (0.5 s doubling), so allow a few attempts.
    alice.expect_status("connected", RECONNECT_TIMEOUT_MS)
    bob.expect_status("connected", RECONNECT_TIMEOUT_MS)
    for page in (alice, bob):  # they really lost the connection and came back
        assert "reconnecting" in page.status_history()
        assert page.status_history()[-1] == "connected"
    # The new process kept no history (memory): the pages cannot recover, say
    # so, and show the room's history again (now empty).
    for page in (alice, bob):
        expect(page.page.locator("#notice")).to_contain_text("could not be recovered")
        expect(page.message("before the restart")).to_have_count(0)
    # The SDK subscribed again by itself: presence and messages flow again.
    alice.expect_members("alice", "bob")
    bob.expect_members("alice", "bob")
    alice.say("back after the restart")
    expect(bob.message("back after the restart")).to_be_visible()


def test_rooms_are_separate_channels_with_their_own_presence(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    alice.expect_members("alice", "bob")

    bob.switch_room("random")

    alice.expect_members("alice")  # Bob left general's presence channel...
    bob.expect_members("bob")  # ...and is alone in random
    # A page shows its own message at once; the others get it after the hook's
    # verdict, in order on each connection: had a page received the other room's
    # message, it would be on screen before the marker that follows it.
    bob.say("random 1")
    alice.say("general 1")
    bob.say("random 2")
    alice.say("general marker")
    expect(bob.message("random 2")).to_be_visible()
    expect(alice.message("general marker")).to_be_visible()
    expect(alice.chat_lines).to_have_count(2)
    expect(bob.chat_lines).to_have_count(2)
    # The presence hooks post "joined"/"left" lines into each room.
    expect(alice.system_line("Bob left")).to_be_visible()
    expect(bob.system_line("Bob joined")).to_be_visible()


def test_clicking_someone_online_sends_them_a_direct_message(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    ChatPage(new_page("bob")).open(url).sign_in("Bob Smith")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob Smith")  # a second tab: one member
    alice.expect_members("alice", "bob-smith")

    alice.member("bob-smith").click()
    alice.page.fill("#dm-message", "hi Bob")
    alice.page.press("#dm-message", "Enter")

    expect(bob.dm("hi Bob")).to_be_visible()


def test_direct_message_reaches_only_the_recipient(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    carol = ChatPage(new_page("carol")).open(url).sign_in("Carol")

    alice.direct_message("bob", "psst bob")
    alice.say("public marker")  # once Carol sees this, the DM had time to reach her

    expect(bob.dm("psst bob")).to_be_visible()
    expect(alice.dm("psst bob")).to_be_visible()  # the sender's own copy
    expect(carol.message("public marker")).to_be_visible()
    expect(carol.page.locator("#dms li")).to_have_count(0)


# A bare page of the chat app that drives the SDK directly, as an attacker would.
SUBSCRIBE_SCRIPT = """
async ([channel, token]) => {
  const rt = new FaztRealtime(null, { token });
  const received = [];
  rt.on('message', (channel, data) => received.push({ channel, data }));
  window.__probe = { rt, received };
  try {
    await rt.subscribe(channel);
    return { subscribed: true };
  } catch (error) {
    return { subscribed: false, code: error.code || null, message: String(error.message || error) };
  }
}
"""


def probe_subscribe(page: Any, channel: str, token: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(SUBSCRIBE_SCRIPT, [channel, token])
    return result


def test_page_without_token_cannot_read_a_private_channel(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    intruder = new_page("anonymous")
    intruder.goto(url)

    result = probe_subscribe(intruder, "private-user-bob")
    assert result["subscribed"] is False
    assert result["code"] == "unauthorized"

    # A DM to Bob arrives in Bob's page and never in the anonymous page.
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    alice.direct_message("bob", "for bob only")
    expect(bob.dm("for bob only")).to_be_visible()
    assert intruder.evaluate("window.__probe.received") == []


def test_signed_in_user_cannot_read_another_users_dm_channel(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    mallory_page = new_page("mallory")
    mallory_page.goto(url)
    token = examples_server.login("chat", "Mallory")

    result = probe_subscribe(mallory_page, "private-user-bob", token)

    assert result["subscribed"] is False
    assert result["code"] == "forbidden"


def test_a_page_back_from_offline_shows_what_it_missed_once_and_in_order(
    examples_server: ExamplesServer, new_page: NewPage, page_errors: PageErrors
) -> None:
    # Offline, the page's reconnect attempts fail: Chromium logs each one.
    page_errors.allow("WebSocket connection to")
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    bob.expect_members("alice", "bob")
    alice.say("before the blip")
    expect(bob.message("before the blip")).to_be_visible()
    bob.record_status_changes()

    bob.page.context.set_offline(True)
    # The SDK notices (no answer to its ping) and drops the dead connection.
    bob.expect_status("reconnecting", RECONNECT_TIMEOUT_MS)
    for text in ("while away 1", "while away 2", "while away 3"):
        alice.say(text)
    expect(alice.message("while away 3")).to_be_visible()
    assert bob.message("while away 1").count() == 0
    bob.page.context.set_offline(False)

    bob.expect_status("connected", RECONNECT_TIMEOUT_MS)
    expect(bob.message("while away 3")).to_be_visible()
    texts = bob.chat_lines.locator(".text").all_inner_texts()
    assert texts == ["before the blip", "while away 1", "while away 2", "while away 3"]
    expect(bob.page.locator("#notice")).to_have_text("")  # everything was recovered
    assert "reconnecting" in bob.status_history()
    alice.say("after the blip")
    expect(bob.message("after the blip")).to_be_visible()
    expect(bob.chat_lines).to_have_count(5)
    # The "joined"/"left" lines are publications on the room too: recovered or
    # live, each is on screen once, in offset order among the messages.
    expect(bob.system_line("Bob joined")).not_to_have_count(0)
    assert bob.shown_offsets() == sorted(set(bob.shown_offsets()))


def test_joining_a_room_shows_its_last_messages(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    for i in range(1, 4):
        alice.say(f"earlier {i}")
    expect(alice.message("earlier 3")).to_be_visible()

    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")  # joins "general" after them

    expect(bob.message("earlier 3")).to_be_visible()
    texts = bob.chat_lines.locator(".text").all_inner_texts()
    assert texts == ["earlier 1", "earlier 2", "earlier 3"]
    # Alice's "joined" line was published on the room before Bob came: history.
    expect(bob.system_line("Alice joined")).to_have_count(1)
    expect(bob.system_line("Bob joined")).to_have_count(1)
    assert bob.shown_offsets() == sorted(set(bob.shown_offsets()))
    expect(bob.page.locator("#notice")).to_have_text("")
    bob.switch_room("random")
    expect(bob.system_line("Bob joined")).to_have_count(1)
    expect(bob.chat_lines).to_have_count(0)
    bob.switch_room("general")
    expect(bob.chat_lines).to_have_count(3)
    expect(bob.system_line("Bob left")).to_have_count(1)  # from general, while in random


EMPTY_TEXT = "el => getComputedStyle(el, '::before').content"


def test_direct_messages_show_names_and_empty_panes_say_what_to_do(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice Smith")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    bob.expect_members("alice-smith", "bob")
    for page in (alice, bob):
        assert "No messages in this room yet" in page.page.eval_on_selector("#messages", EMPTY_TEXT)
        assert "No direct messages yet" in page.page.eval_on_selector("#dms", EMPTY_TEXT)

    alice.direct_message("bob", "psst")

    # The recipient sees the sender's name; the sender sees whom they wrote to.
    expect(bob.dm("psst").locator(".author")).to_have_text("Alice Smith")
    expect(alice.dm("psst").locator(".author")).to_have_text("You → Bob")
    assert bob.page.eval_on_selector("#dms", EMPTY_TEXT) == "none"
    assert "No messages in this room yet" in bob.page.eval_on_selector("#messages", EMPTY_TEXT)
