"""Screenshots of the example apps for the README (``docs/screenshots/``).

Run from the repository root::

    .venv/bin/python -m tests.browser.screenshots            # writes docs/screenshots/*.png
    .venv/bin/python -m tests.browser.screenshots --out DIR

It starts ``fazt serve examples/`` in a temporary data folder, plays a short
scene in each app with real Chromium and saves what one user sees, on a
desktop (``chat.png``, ``live-poll.png``) and on a 390 px wide phone
(``chat-mobile.png``, ``live-poll-mobile.png``).
``test_screenshots.py`` runs the same scenes into a temporary folder, so this
script cannot rot unnoticed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.browser import chromium
from tests.browser.pages import ChatPage, PollPage
from tests.browser.server import ExamplesServer

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "docs" / "screenshots"
#: Screen sizes: the README's desktop shots are 1280x720.
SCREENS: dict[str, dict[str, Any]] = {
    "": {**chromium.DESKTOP, "viewport": {"width": 1280, "height": 720}},
    "-mobile": chromium.PHONE,
}


def new_context(browser: Browser, screen: dict[str, Any]) -> BrowserContext:
    # Reduced motion: the poll's bars take their final width at once.
    return browser.new_context(**screen, reduced_motion="reduce")


def chat_scene(browser: Browser, server: ExamplesServer, out: Path, suffix: str = "") -> Path:
    url = server.url("chat")
    contexts = [new_context(browser, SCREENS[suffix]) for _ in range(3)]
    try:
        alice, bob, carol = (
            ChatPage(context.new_page()).open(url).sign_in(name)
            for context, name in zip(contexts, ["Alice", "Bob", "Carol"], strict=True)
        )
        alice.expect_members("alice", "bob", "carol")
        alice.say("Hi everyone! The demo runs on fazt realtime.")
        bob.say("Hello Alice, I see you in the Online list.")
        carol.say("Each message is checked by the onPublish hook in api/_realtime.js.")
        bob.direct_message("alice", "This one is private: only you get it.")
        expect(alice.dm("only you get it")).to_be_visible()
        expect(alice.message("onPublish hook")).to_be_visible()
        target = out / f"chat{suffix}.png"
        alice.page.screenshot(path=str(target))
        return target
    finally:
        for context in contexts:
            context.close()


def poll_scene(browser: Browser, server: ExamplesServer, out: Path, suffix: str = "") -> Path:
    url = server.url("live-poll")
    contexts = [new_context(browser, SCREENS[suffix]) for _ in range(4)]
    try:
        admin = PollPage(contexts[0].new_page()).open(url).sign_in("Ada", "demo-admin")
        votes = [("Vera", "presence"), ("Ben", "redis"), ("Kim", "presence")]
        for context, (name, option) in zip(contexts[1:], votes, strict=True):
            PollPage(context.new_page()).open(url).sign_in(name).vote(option)
        expect(admin.page.locator("#total")).to_have_text("3")
        admin.vote("dm")
        expect(admin.page.locator("#total")).to_have_text("4")
        admin.announce("Voting closes in 5 minutes!")
        expect(admin.announcement).to_be_visible()
        target = out / f"live-poll{suffix}.png"
        admin.page.screenshot(path=str(target))
        return target
    finally:
        for context in contexts:
            context.close()


def take_screenshots(browser: Browser, out: Path) -> list[Path]:
    """Serve the examples, play both scenes on each screen, return the PNG paths written.

    Each screen gets a server of its own: chat rooms keep their history, so a
    second scene on the same server would show the first one's messages too.
    """
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="fazt-screenshots-") as data:
        for index, suffix in enumerate(SCREENS):
            server = ExamplesServer(Path(data) / f"screen-{index}")
            server.start()
            try:
                for scene in (chat_scene, poll_scene):
                    written.append(scene(browser, server, out, suffix))
            finally:
                server.stop()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the example apps.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    out = parser.parse_args().out
    expect.set_options(timeout=chromium.DEFAULT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = chromium.launch(playwright)
        try:
            for path in take_screenshots(browser, out):
                print(path)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
