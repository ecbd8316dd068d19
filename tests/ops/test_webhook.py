"""The example notification plugin against a real Tornado server on a free port."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from fazt.kernel.notifications import Notification
from tests.harness import free_port
from tests.realtime.wsclient import realtime_kernel, upgrade_status


class Receiver(tornado.web.RequestHandler):
    def initialize(self, received: list[dict[str, Any]], status: int) -> None:
        self.received = received
        self.status = status

    def post(self) -> None:
        assert self.request.headers["Content-Type"] == "application/json"
        self.received.append(json.loads(self.request.body))
        self.set_status(self.status)


async def receiver(status: int = 204) -> tuple[tornado.httpserver.HTTPServer, str, list[Any]]:
    received: list[dict[str, Any]] = []
    app = tornado.web.Application([(r"/hook", Receiver, {"received": received, "status": status})])
    server = tornado.httpserver.HTTPServer(app)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server.add_sockets(sockets)
    return server, f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hook", received


async def until(predicate: Any, what: str) -> None:
    for _ in range(250):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.gen_test(timeout=30)
async def test_limit_notifications_are_posted_to_the_webhook(tmp_path: Path) -> None:
    server, url, received = await receiver()
    try:
        config = {
            "plugins": ["realtime", "webhook"],
            "webhook": {
                "url": url,
                "kinds": ["realtime.limit.warning", "realtime.limit.rejection"],
            },
        }
        limits = {"limits": {"maxConnectionsPerApp": 5}}
        async with realtime_kernel(tmp_path, {"chat": {}}, limits, extra_config=config) as rt:
            for _ in range(5):
                await rt.client("chat")  # the 4th crosses 80 %
            assert await upgrade_status(rt.url("chat")) == 503
            await until(lambda: len(received) == 2, "two POSTs")
            # Another kind than those listed is not forwarded.
            rt.kernel.notifications.notify(Notification("other.kind", "ignored"))
            await asyncio.sleep(0.1)
        uuid = rt.app("chat").uuid
        assert [(r["kind"], r["appUuid"], r["data"]) for r in received] == [
            (
                "realtime.limit.warning",
                uuid,
                {"limit": "maxConnectionsPerApp", "used": 4, "max": 5},
            ),
            (
                "realtime.limit.rejection",
                uuid,
                {"limit": "maxConnectionsPerApp", "used": 5, "max": 5},
            ),
        ]
        assert all(isinstance(r["time"], int) and r["message"] for r in received)
    finally:
        server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_a_failing_webhook_is_logged_and_never_blocks_the_kernel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, url, received = await receiver(status=500)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    try:
        for target in (url, dead):
            config = {"plugins": ["realtime", "webhook"], "webhook": {"url": target}}
            async with realtime_kernel(
                tmp_path / target[-9:-5], {"chat": {}}, extra_config=config
            ) as rt:
                with caplog.at_level(logging.WARNING, logger="fazt.ops.webhook"):
                    rt.kernel.notifications.notify(Notification("test.kind", "hello"))
                    client = await rt.client("chat")  # the kernel serves on meanwhile
                    assert await client.alive()
                    await until(
                        lambda: any(
                            "POST of test.kind failed" in r.message for r in caplog.records
                        ),
                        "the failure line",
                    )
                caplog.clear()
        assert [r["kind"] for r in received] == ["test.kind"]
    finally:
        server.stop()


def test_the_webhook_plugin_needs_a_url(tmp_path: Path) -> None:
    from fazt.config import ConfigError, KernelConfig
    from fazt.ops.webhook import WebhookPlugin

    config = KernelConfig({"plugins": ["webhook"], "webhook": {"kinds": []}})
    with pytest.raises(ConfigError, match="url"):
        config.validate_plugins([WebhookPlugin()])
