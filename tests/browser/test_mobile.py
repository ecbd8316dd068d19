"""Both examples on a 390 px wide phone in real Chromium: no horizontal scroll, and
every control fully on screen, touch-sized and working."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage
from tests.browser.pages import ChatPage, PollPage
from tests.browser.server import ExamplesServer

pytestmark = pytest.mark.browser

#: Smallest height of a control a thumb can hit reliably (CSS pixels).
MIN_TOUCH_PX = 40
LONG_WORD = "https://example.org/" + "a-very-long-path-segment-" * 8

LAYOUT = """() => {
  const width = window.innerWidth;
  const controls = [...document.querySelectorAll('button, input, select')]
    .filter((el) => el.offsetParent !== null)
    .map((el) => {
      const box = el.getBoundingClientRect();
      return { id: el.id || el.textContent.trim(), left: box.left, right: box.right,
               height: box.height };
    });
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, controls };
}"""


def check_layout(page: Page, when: str) -> None:
    layout: dict[str, Any] = page.evaluate(LAYOUT)
    width = layout["innerWidth"]
    assert width == 390, layout
    assert layout["scrollWidth"] <= width, f"{when}: horizontal scroll {layout['scrollWidth']}"
    assert layout["controls"], when
    for control in layout["controls"]:
        assert control["left"] >= 0 and control["right"] <= width, (when, control)
        assert control["height"] >= MIN_TOUCH_PX, (when, control)


def test_chat_on_a_phone(examples_server: ExamplesServer, new_phone: NewPage) -> None:
    url = examples_server.url("chat")
    alice = ChatPage(new_phone("alice")).open(url)
    check_layout(alice.page, "chat sign-in")
    alice.sign_in("Alice")
    bob = ChatPage(new_phone("bob")).open(url).sign_in("Bob")
    alice.expect_members("alice", "bob")
    check_layout(alice.page, "chat, empty room")

    alice.say(f"see {LONG_WORD}")
    bob.direct_message("alice", LONG_WORD)
    expect(alice.dm(LONG_WORD)).to_be_visible()
    expect(bob.message("see https://")).to_be_visible()
    check_layout(alice.page, "chat with long messages")
    check_layout(bob.page, "chat with long messages")


def test_live_poll_on_a_phone(examples_server: ExamplesServer, new_phone: NewPage) -> None:
    url = examples_server.url("live-poll")
    viewer = PollPage(new_phone("viewer")).open(url)
    check_layout(viewer.page, "poll before sign-in")
    admin = PollPage(new_phone("admin")).open(url).sign_in("Ada", "demo-admin")
    admin.vote("presence")
    expect(viewer.count("presence")).to_have_text("1")
    admin.announce(f"Closing soon {LONG_WORD}")
    expect(viewer.announcement).to_be_visible()
    check_layout(viewer.page, "poll with an announcement")
    check_layout(admin.page, "poll as admin")
