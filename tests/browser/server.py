"""``fazt serve examples/`` as a real subprocess, restartable on the same port."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.harness import FaztProcess

# FAZT_EXAMPLES_DIR points the tests at another copy of examples/ (development only).
EXAMPLES_DIR = Path(
    os.environ.get("FAZT_EXAMPLES_DIR") or Path(__file__).resolve().parents[2] / "examples"
)

# Kernel config for browser runs; empty means the defaults `scripts/demo` uses.
SERVER_CONFIG: dict[str, Any] = {}


class ExamplesServer:
    """The example apps served by a ``fazt serve`` subprocess (``FaztProcess``)."""

    def __init__(self, data_dir: Path, config: Mapping[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self.config = dict(SERVER_CONFIG if config is None else config)
        self.process = FaztProcess(EXAMPLES_DIR, data_dir=data_dir, config=self.config)
        self.port = self.process.port

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        """Graceful stop (SIGTERM), then a new process on the same port and data
        folder, so the kernel secret, the app uuids and the pages' URLs stay."""
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
