"""Fixtures for real-browser tests: Debian's Chromium, fresh contexts, and
``fazt serve examples/`` as a real subprocess on a free port.

Every test module here sets ``pytestmark = pytest.mark.browser``. A page's JS errors and
``console.error`` lines fail the test that caused them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from tests.browser import chromium
from tests.browser.server import ExamplesServer

expect.set_options(timeout=chromium.DEFAULT_TIMEOUT_MS)


# Module scope, not session: while the sync Playwright driver runs, its event
# loop is the thread's *running* loop, so any asyncio test (every other folder)
# scheduled while it is open fails with "another loop is running". A module's
# fixtures are torn down before the next module's tests start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = chromium.chromium_missing_reason()
    if reason is not None:
        # A failure, not a skip: .ci/run installs Chromium, so a missing browser
        # there is a broken setup that must not pass silently.
        pytest.fail(reason, pytrace=False)
    with sync_playwright() as playwright:
        launched = chromium.launch(playwright)
        yield launched
        launched.close()


class PageErrors:
    """Uncaught exceptions and console errors of the pages a test opened."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: list[str] = []

    def allow(self, fragment: str) -> None:
        """Do not fail on errors containing ``fragment`` (e.g. an expected 401)."""
        self.expected.append(fragment)

    def watch(self, page: Page, label: str) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"{label}: {error}"))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{label}: console.error {message.text}")

        page.on("console", on_console)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(f in e for f in self.expected)]


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


NewPage = Callable[[str], Page]


def _pages(browser: Browser, page_errors: PageErrors, options: dict[str, Any]) -> Iterator[NewPage]:
    contexts: list[BrowserContext] = []

    def make(label: str) -> Page:
        context = browser.new_context(**options)
        context.set_default_timeout(chromium.DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page_errors.watch(page, label)
        return page

    yield make
    for context in contexts:
        context.close()
    unexpected = page_errors.unexpected()
    assert not unexpected, "errors in the browser pages:\n" + "\n".join(unexpected)


@pytest.fixture
def new_page(browser: Browser, page_errors: PageErrors) -> Iterator[NewPage]:
    """``new_page(label)``: a page in its own browser context (own storage, like
    a separate browser window of another person)."""
    yield from _pages(browser, page_errors, chromium.DESKTOP)


@pytest.fixture
def new_phone(browser: Browser, page_errors: PageErrors) -> Iterator[NewPage]:
    """``new_phone(label)``: like ``new_page``, on a 390 px wide touch phone."""
    yield from _pages(browser, page_errors, chromium.PHONE)


@pytest.fixture
def examples_server(tmp_path: Path) -> Iterator[ExamplesServer]:
    server = ExamplesServer(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
