"""Fixtures for real-browser tests: Debian's Chromium, fresh contexts, and
``fazt serve examples/`` as a real subprocess on a free port.

Every test in this folder is marked ``browser``. A page's JS errors and
``console.error`` lines fail the test that caused them.
"""

from __future__ import annotations

import json
import urllib.request
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
from tests.harness import FaztProcess

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

expect.set_options(timeout=chromium.DEFAULT_TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
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


@pytest.fixture
def new_page(browser: Browser, page_errors: PageErrors) -> Iterator[NewPage]:
    """``new_page(label)``: a page in its own browser context (own storage, like
    a separate browser window of another person)."""
    contexts: list[BrowserContext] = []

    def make(label: str) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
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


class ExamplesServer:
    """``fazt serve examples/`` in a subprocess; restartable on the same port."""

    def __init__(self, data_dir: Path, config: dict[str, Any]) -> None:
        self.data_dir = data_dir
        self.config = config
        self.process = FaztProcess(EXAMPLES_DIR, data_dir=data_dir, config=config)
        self.port = self.process.port

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        """Graceful stop (SIGTERM), then a new process on the same port and data
        folder, so the kernel secret, app uuids and the pages' URLs stay the same."""
        self.process.stop()
        self.process = FaztProcess(
            EXAMPLES_DIR, data_dir=self.data_dir, config=self.config, port=self.port
        )
        self.process.start()

    def url(self, slug: str) -> str:
        """The app's page as a browser reaches it: ``http://<slug>.localhost:PORT/``."""
        return f"http://{slug}.localhost:{self.port}/"

    def login(self, slug: str, name: str) -> str:
        """A token from the app's own ``api/login`` (Python cannot resolve
        ``*.localhost``, so this goes through the ``/_app/<slug>/`` route)."""
        request = urllib.request.Request(
            self.process.url(slug, "/api/login"),
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            token = json.loads(response.read())["token"]
        assert isinstance(token, str)
        return token


# Short heartbeat and shutdown grace so restarts and dead-peer detection are quick.
SERVER_CONFIG: dict[str, Any] = {}


@pytest.fixture
def examples_server(tmp_path: Path) -> Iterator[ExamplesServer]:
    server = ExamplesServer(tmp_path / "data", SERVER_CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()
