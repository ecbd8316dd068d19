"""The chat's realtime hooks as users see them: real Chromium, ``fazt serve examples/``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import NewPage
from tests.browser.pages import ChatPage
from tests.browser.server import ExamplesServer

pytestmark = pytest.mark.browser


def test_a_rejected_message_shows_as_an_error_on_the_senders_page(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    bob = ChatPage(new_page("bob")).open(url).sign_in("Bob")
    bob.expect_members("alice", "bob")
    too_long = "x" * 501

    alice.page.fill("#message", too_long)
    alice.page.press("#message", "Enter")

    # The onPublish hook refused it: the sender sees why, gets the text back,
    # and the message is not on anyone's screen.
    expect(alice.error).to_have_text("a message may have at most 500 characters (this one has 501)")
    expect(alice.page.locator("#message")).to_have_value(too_long)
    expect(alice.chat_lines).to_have_count(0)
    # A message after it arrives, and it is the only one Bob ever got.
    alice.page.fill("#message", "  short enough  ")
    alice.page.press("#message", "Enter")
    expect(bob.message("short enough")).to_be_visible()
    expect(bob.chat_lines).to_have_count(1)
    expect(alice.error).to_be_hidden()
    expect(alice.chat_lines).to_have_count(1)


def test_system_lines_and_the_invite_only_room(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_page("alice")).open(url).sign_in("Alice")
    carol = ChatPage(new_page("carol")).open(url).sign_in("Carol")
    expect(alice.system_line("Carol joined")).to_be_visible()

    alice.switch_room("team")
    alice.expect_members("alice")
    carol.switch_room("team")

    expect(carol.error).to_have_text('room "team" is invite-only')
    carol.expect_members()
    alice.expect_members("alice")
    alice.say("only for the team")
    expect(alice.message("only for the team")).to_be_visible()
    expect(carol.chat_lines).to_have_count(0)
