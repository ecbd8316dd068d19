"""The app ``fazt new`` writes, in real Chromium, at both of its URLs without edits.

This is also the page a newcomer writes from the README: it loads the SDK from
the absolute ``/_fazt/realtime.min.js``, which must work under ``/_app/<slug>/``
on the kernel's own host too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import NewPage
from tests.cli.binary import run_fazt
from tests.harness import FaztProcess

pytestmark = pytest.mark.browser


@pytest.fixture
def hello_server(tmp_path: Path) -> Iterator[FaztProcess]:
    done = run_fazt("new", "hello", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with FaztProcess(tmp_path / "apps", data_dir=tmp_path / "data") as server:
        yield server


def open_page(page: Page, url: str) -> Page:
    page.goto(url)
    expect(page.locator("#status")).to_have_text("connected")
    return page


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#text")).to_have_value("")


def test_new_app_works_at_both_urls(hello_server: FaztProcess, new_page: NewPage) -> None:
    by_host = open_page(new_page("by-host"), f"http://hello.localhost:{hello_server.port}/")
    by_path = open_page(new_page("by-path"), f"http://127.0.0.1:{hello_server.port}/_app/hello/")
    for page in (by_host, by_path):
        assert page.evaluate("typeof FaztRealtime") == "function"
        expect(page.locator("#empty")).to_be_visible()

    say(by_host, "hi from the app host")
    say(by_path, "<b>hi</b> from the path route")

    for page in (by_host, by_path):
        expect(page.locator("#messages li")).to_have_text(
            ["hi from the app host", "<b>hi</b> from the path route"]
        )
        expect(page.locator("#empty")).to_be_hidden()
        expect(page.locator("#messages b")).to_have_count(0)  # text, never HTML
