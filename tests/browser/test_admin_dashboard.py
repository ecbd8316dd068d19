"""The admin dashboard (``GET /admin/``) in real Chromium: token, live numbers, events.

Run as a script to refresh the screenshot in the README and docs::

    .venv/bin/python -m tests.browser.test_admin_dashboard   # docs/screenshots/admin-dashboard.png
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from websockets.sync.client import ClientConnection, connect

from tests.browser import chromium
from tests.browser.conftest import NewPage, PageErrors
from tests.harness import REPO_ROOT, FaztProcess, free_port

pytestmark = pytest.mark.browser

CONFIG = {"realtime": {"limits": {"maxConnectionsPerApp": 10}}}


class Dashboard:
    """``fazt serve examples --admin-port`` and what a test does to it."""

    def __init__(self, data_dir: Path) -> None:
        self.admin_port = free_port()
        self.process = FaztProcess(
            REPO_ROOT / "examples",
            data_dir=data_dir,
            config={**CONFIG, "admin": {"port": self.admin_port}},
        )
        self.clients: list[ClientConnection] = []
        self.client_ids: list[str] = []
        self._connections = ExitStack()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/admin/"

    @property
    def token(self) -> str:
        return (self.process.data_dir / "admin-token").read_text().strip()

    def client(self, slug: str, *channels: str) -> ClientConnection:
        # Nobody reads these clients' messages: no keepalive, an unbounded queue.
        opened = connect(
            self.process.ws_url(slug), open_timeout=5, ping_interval=None, max_queue=None
        )
        ws = self._connections.enter_context(opened)
        self.clients.append(ws)
        self.client_ids.append(json.loads(ws.recv(timeout=5))["clientId"])  # connected
        for channel in channels:
            ws.send(json.dumps({"type": "subscribe", "channel": channel}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        return ws

    def api(self, path: str, body: object) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.admin_port}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def close(self) -> None:
        try:
            self._connections.close()
        finally:
            self.process.stop()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    running = Dashboard(tmp_path / "data")
    running.process.start()
    try:
        yield running
    finally:
        running.close()


def sign_in(page: Page, dashboard: Dashboard) -> None:
    page.goto(dashboard.url)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", dashboard.token)
    page.press("#token", "Enter")
    expect(page.locator("#main")).to_be_visible()


def test_the_dashboard_follows_the_server(
    dashboard: Dashboard, new_page: NewPage, page_errors: PageErrors
) -> None:
    page_errors.allow("401")  # the wrong token below is refused on purpose
    page = new_page("admin")
    page.goto(dashboard.url)
    page.fill("#token", "not-the-token-at-all")
    page.press("#token", "Enter")
    expect(page.locator("#login-error")).to_have_text("That token was refused.")
    sign_in(page, dashboard)
    expect(page.locator("#ready")).to_have_text("ready")
    expect(page.locator("#backplane")).to_have_text("backplane memory up")
    expect(page.locator("#connections-total")).to_have_text("0")

    for _ in range(3):
        dashboard.client("chat", "room-lobby")
    dashboard.client("live-poll", "poll")
    expect(page.locator("#connections-total")).to_have_text("4")
    chat = page.locator('#apps tr[data-slug="chat"]')
    expect(chat.locator(".connections")).to_have_text("3")
    expect(chat.locator(".channel")).to_have_text("room-lobby (3)")

    # Publications and deliveries per second rise while messages flow.
    for _ in range(8):
        dashboard.api("/admin/apps/chat/broadcast", {"channel": "room-lobby", "data": "hi"})
        time.sleep(0.3)
    expect(page.locator("#deliveries-rate")).not_to_have_text("0.0")
    expect(page.locator("#deliveries-spark polyline")).to_have_count(1)

    dashboard.clients[0].close()
    assert dashboard.api("/admin/apps/chat/kick", {"clientId": "nobody"}) == {"kicked": 0}
    expect(page.locator("#connections-total")).to_have_text("3")
    # The token stays for this tab: a reload opens the dashboard at once.
    page.reload()
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()


def screenshot_scene(page: Page, dashboard: Dashboard, out: Path, seconds: int = 24) -> Path:
    """A busy minute, shortened: clients come, messages flow, a limit warns, a user is kicked."""
    sign_in(page, dashboard)
    for index in range(8):
        dashboard.client("chat", "room-lobby", *(["room-random"] if index % 2 else []))
    for _ in range(3):
        dashboard.client("live-poll", "poll")
    for second in range(seconds):
        for _ in range(2 + (second * 7) % 11):
            dashboard.api("/admin/apps/chat/broadcast", {"channel": "room-lobby", "data": second})
        if second % 3 == 0:
            dashboard.api("/admin/apps/live-poll/broadcast", {"channel": "poll", "data": second})
        time.sleep(0.5)
    kicked = dashboard.api("/admin/apps/chat/kick", {"clientId": dashboard.client_ids[0]})
    assert kicked == {"kicked": 1}
    expect(page.locator("#events .kind-kick")).to_have_count(1)
    target = out / "admin-dashboard.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def test_the_screenshot_scene_runs(dashboard: Dashboard, new_page: NewPage, tmp_path: Path) -> None:
    target = screenshot_scene(new_page("admin"), dashboard, tmp_path, seconds=3)
    assert target.stat().st_size > 10_000


def main() -> None:
    out = REPO_ROOT / "docs" / "screenshots"
    with sync_playwright() as playwright, ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fazt-shot-")))
        dashboard = Dashboard(data / "data")
        dashboard.process.start()
        stack.callback(dashboard.close)
        browser = chromium.launch(playwright)
        stack.callback(browser.close)
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        print(screenshot_scene(context.new_page(), dashboard, out))


if __name__ == "__main__":
    main()
