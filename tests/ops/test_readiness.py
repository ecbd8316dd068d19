"""``/readyz`` follows the backplane: 503 while Redis is stopped, 200 once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.ops.support import Admin, admin_kernel, value
from tests.realtime.backplane.redis_server import RedisServer, needs_redis_server

pytestmark = [pytest.mark.redis, needs_redis_server]


async def readiness(admin: Admin, ready: bool, timeout: float = 20.0) -> Any:
    """Wait until ``/readyz`` says ``ready``; its last answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await admin.fetch("/readyz", token=None)
        if body["ready"] is ready:
            assert status == (200 if ready else 503)
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/readyz stayed {body} for {timeout} s")
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=60)
async def test_readiness_flips_while_redis_is_stopped_and_started(tmp_path: Path) -> None:
    redis = RedisServer()
    redis.start()
    try:
        config = {"redis": redis.url}
        async with admin_kernel(tmp_path, {"chat": {}}, extra_config=config) as admin:
            assert await readiness(admin, True) == {"ready": True}
            assert value(await admin.metrics(), "fazt_realtime_backplane_up") == 1
            client = await admin.rt.client("chat")
            redis.stop()
            # The node notices at once: its subscriber connection breaks.
            assert await readiness(admin, False) == {
                "ready": False,
                "reason": "the backplane (Redis) is unreachable",
            }
            assert value(await admin.metrics(), "fazt_realtime_backplane_up") == 0
            overview = await admin.get("/admin/overview")
            assert overview["backplane"]["up"] is False and overview["ready"] is False
            assert await admin.fetch("/healthz", token=None) == (200, {"ok": True})
            assert await client.alive()  # local clients keep being served
            redis.start()
            assert await readiness(admin, True) == {"ready": True}
            assert value(await admin.metrics(), "fazt_realtime_backplane_up") == 1
    finally:
        redis.close()
