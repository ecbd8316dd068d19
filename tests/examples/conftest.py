"""The example apps served by a real in-process kernel (``running_kernel``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.examples.clients import AppClient
from tests.harness import running_kernel

# FAZT_EXAMPLES_DIR points the tests at another copy of examples/ (development only).
EXAMPLES_DIR = Path(
    os.environ.get("FAZT_EXAMPLES_DIR") or Path(__file__).resolve().parents[2] / "examples"
)


@asynccontextmanager
async def examples_kernel(data_dir: Path) -> AsyncIterator[tuple[AppClient, AppClient]]:
    """``examples/`` on a fresh kernel: (chat, live-poll) clients."""
    async with running_kernel(EXAMPLES_DIR, data_dir=data_dir) as kernel:
        yield AppClient(kernel.port, "chat"), AppClient(kernel.port, "live-poll")
