"""The README screenshot script still plays both scenes (into a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.screenshots import take_screenshots

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_screenshot_script_writes_every_png(browser: Browser, tmp_path: Path) -> None:
    written = take_screenshots(browser, tmp_path)

    assert [path.name for path in written] == [
        "chat.png",
        "live-poll.png",
        "chat-mobile.png",
        "live-poll-mobile.png",
    ]
    for path in written:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
