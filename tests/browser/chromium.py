"""Launching Debian's Chromium through Playwright, the one way every browser test does.

We never run ``playwright install``: the browser is Debian's ``chromium``
package (``scripts/setup-env`` installs it), driven through
``executable_path``. ``--no-sandbox`` is required when running as root.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Playwright

CHROMIUM_PATH = Path(os.environ.get("FAZT_CHROMIUM", "/usr/bin/chromium"))

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Background pages must keep their timers and sockets running: two pages of
    # one test are never both in front.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

#: A phone: 390 CSS pixels wide (an iPhone 12-15), touch, mobile viewport rules.
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}

# Every Playwright wait in a browser test is bounded by this (milliseconds).
DEFAULT_TIMEOUT_MS = 10_000


def chromium_missing_reason() -> str | None:
    """Why Chromium cannot be launched here, or None when it can."""
    if not CHROMIUM_PATH.exists() and shutil.which(str(CHROMIUM_PATH)) is None:
        return (
            f"{CHROMIUM_PATH} not found: run scripts/setup-env (installs Debian's "
            "chromium), or set FAZT_CHROMIUM to a Chromium binary"
        )
    return None


def launch(playwright: Playwright) -> Browser:
    """A headless Chromium from Debian's package."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
    )
