"""The example apps served by a real in-process kernel (``running_kernel``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.examples.clients import AppClient
from tests.harness import running_kernel

# FAZT_EXAMPLES_DIR points the tests at another copy of examples/ (development only).
EXAMPLES_DIR = Path(
    os.environ.get("FAZT_EXAMPLES_DIR") or Path(__file__).resolve().parents[2] / "examples"
)


@asynccontextmanager
async def examples_kernel(
    data_dir: Path, config: Mapping[str, Any] | None = None
) -> AsyncIterator[tuple[AppClient, AppClient]]:
    """``examples/`` on a fresh kernel (``config``: its kernel config): (chat, live-poll)."""
    async with running_kernel(EXAMPLES_DIR, data_dir=data_dir, config=config) as kernel:
        yield AppClient(kernel.port, "chat"), AppClient(kernel.port, "live-poll")
