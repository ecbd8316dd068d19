"""The shared harness itself: an in-loop kernel serves an app built by make_app."""

from __future__ import annotations

from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.harness import make_app, running_kernel


@pytest.mark.gen_test(timeout=10)
async def test_running_kernel_serves_an_app(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "<h1>chat</h1>"})
    async with running_kernel(
        tmp_path / "apps", data_dir=tmp_path / "data", config={"plugins": []}
    ) as k:
        assert k.url("chat") == f"http://127.0.0.1:{k.port}/_app/chat/"
        assert k.ws_url("chat") == f"ws://127.0.0.1:{k.port}/_app/chat/_ws"
        client = AsyncHTTPClient()
        response = await client.fetch(k.url("chat"))
        assert response.body == b"<h1>chat</h1>"
        assert k.kernel.apps.by_slug("chat") is not None
