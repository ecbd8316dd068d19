"""Page objects for the example apps: what a user does, in the apps' own DOM.

Every wait goes through Playwright's ``expect``/``wait_for`` and is therefore
bounded by the page's default timeout (``chromium.DEFAULT_TIMEOUT_MS``).
"""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect


class ExamplePage:
    """Common to both examples: the connection badge and page-error capture."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    def record_status_changes(self) -> None:
        """Start keeping every state the badge shows (read with ``status_history``)."""
        self.page.evaluate(
            """() => {
              const badge = document.getElementById('status');
              window.__statusHistory = [];
              new MutationObserver(() => window.__statusHistory.push(badge.dataset.state))
                .observe(badge, { attributes: true, attributeFilter: ['data-state'] });
            }"""
        )

    def status_history(self) -> list[str]:
        history: list[str] = self.page.evaluate("window.__statusHistory")
        return history

    def expect_status(self, state: str, timeout_ms: float | None = None) -> None:
        expect(self.status).to_have_attribute("data-state", state, timeout=timeout_ms)


class ChatPage(ExamplePage):
    """``examples/chat`` as one signed-in user sees it."""

    def open(self, base_url: str) -> ChatPage:
        self.page.goto(base_url)
        return self

    def sign_in(self, name: str) -> ChatPage:
        self.page.fill("#name", name)
        self.page.click("#login-form button")
        expect(self.page.locator("#chat")).to_be_visible()
        self.expect_status("connected")
        return self

    def switch_room(self, room: str) -> None:
        self.page.select_option("#room", room)

    def say(self, text: str) -> None:
        self.page.fill("#message", text)
        self.page.press("#message", "Enter")
        expect(self.page.locator("#message")).to_have_value("")

    def direct_message(self, to: str, text: str) -> None:
        self.page.fill("#dm-to", to)
        self.page.fill("#dm-message", text)
        self.page.press("#dm-message", "Enter")
        expect(self.page.locator("#dm-message")).to_have_value("")

    def message(self, text: str) -> Locator:
        return self.page.locator("#messages li:not(.system)", has_text=text)

    @property
    def chat_lines(self) -> Locator:
        """The room's messages, without the system lines of joins and leaves."""
        return self.page.locator("#messages li:not(.system)")

    def system_line(self, text: str) -> Locator:
        return self.page.locator("#messages li.system", has_text=text)

    def shown_offsets(self) -> list[int]:
        """The offsets of the room's lines on screen, top to bottom (a page's own
        messages carry none: the server never echoes them)."""
        offsets: list[int] = self.page.locator("#messages li").evaluate_all(
            "items => items.filter((item) => item.dataset.offset)"
            ".map((item) => Number(item.dataset.offset))"
        )
        return offsets

    @property
    def error(self) -> Locator:
        return self.page.locator("#error")

    def dm(self, text: str) -> Locator:
        return self.page.locator("#dms li", has_text=text)

    def member(self, user_id: str) -> Locator:
        return self.page.locator(f'#members li[data-id="{user_id}"]')

    def expect_members(self, *user_ids: str) -> None:
        expect(self.page.locator("#members li")).to_have_count(len(user_ids))
        for user_id in user_ids:
            expect(self.member(user_id)).to_be_visible()


class PollPage(ExamplePage):
    """``examples/live-poll`` as one viewer sees it."""

    def open(self, base_url: str) -> PollPage:
        self.page.goto(base_url)
        expect(self.page.locator("#options li").first).to_be_visible()
        self.expect_status("connected")
        return self

    def sign_in(self, name: str, admin_code: str = "") -> PollPage:
        self.page.fill("#name", name)
        self.page.fill("#admin-code", admin_code)
        self.page.click("#login-form button")
        expect(self.page.locator("#login-form")).to_be_hidden()
        self.expect_status("connected")
        return self

    def vote(self, option: str) -> None:
        self.page.click(f'#options li[data-option="{option}"] button')

    def count(self, option: str) -> Locator:
        return self.page.locator(f'#options li[data-option="{option}"] .count')

    def announce(self, text: str) -> None:
        self.page.fill("#announce-message", text)
        self.page.click("#announce-form button")
        expect(self.page.locator("#announce-message")).to_have_value("")

    @property
    def announcement(self) -> Locator:
        return self.page.locator("#announcement")
