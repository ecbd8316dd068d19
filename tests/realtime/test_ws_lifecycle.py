"""Heartbeat, idle timeout and graceful shutdown, with short intervals."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from websockets.sync.client import connect as sync_connect

from tests.harness import FaztProcess, make_app
from tests.realtime.wsclient import Client, realtime_kernel, upgrade_status


async def answer_pings(client: Client, seconds: float) -> list[dict[str, object]]:
    """Answer every server ping for ``seconds``; returns the other messages."""
    others: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            message = await client.recv(timeout=left)
        except asyncio.TimeoutError:
            break
        if message == {"type": "ping"}:
            await client.send({"type": "pong"})
        else:
            others.append(message)
    return others


@pytest.mark.gen_test(timeout=20)
async def test_pong_timeout_closes_4201(tmp_path: Path) -> None:
    config = {"pingIntervalSeconds": 0.2, "pongTimeoutSeconds": 0.2}
    async with realtime_kernel(tmp_path, realtime=config) as rt:
        silent = await rt.client("chat")
        healthy = await rt.client("chat")
        await healthy.subscribe("c")
        await silent.subscribe("c")
        keeper = asyncio.ensure_future(answer_pings(healthy, 1.2))
        code, seen = await silent.expect_close(timeout=3)
        assert seen and seen[0] == {"type": "ping"}
        assert code == 4201
        assert await keeper == []  # the healthy client only ever saw pings
        assert await healthy.alive()


@pytest.mark.gen_test(timeout=20)
async def test_idle_timeout_4202_only_without_subscriptions(tmp_path: Path) -> None:
    config = {
        "pingIntervalSeconds": 0.25,
        "pongTimeoutSeconds": 1,
        "limits": {"idleTimeoutSeconds": 1},
    }
    async with realtime_kernel(tmp_path, realtime=config) as rt:
        idle = await rt.client("chat")
        listener = await rt.client("chat")
        await listener.subscribe("news")
        keeper = asyncio.ensure_future(answer_pings(listener, 1.8))
        with pytest.raises(Exception) as closed:
            await answer_pings(idle, 3)
        assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 4202
        assert await keeper == []
        # The quiet subscriber answered pings only and is still here.
        assert await listener.alive()
        await rt.plugin.api(rt.app("chat")).broadcast("news", "nothing lost")
        others = await answer_pings(listener, 0.3)
        assert others == [
            {
                "type": "message",
                "channel": "news",
                "data": "nothing lost",
                "timestamp": others[0]["timestamp"],
            }
        ]


@pytest.mark.gen_test(timeout=20)
async def test_graceful_shutdown_sequence(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, realtime={"shutdownGraceSeconds": 0.5}) as rt:
        polite = await rt.client("chat")
        stubborn = await rt.client("chat")
        url = rt.url("chat")

        async def polite_client() -> dict[str, object]:
            message = await polite.recv()
            await polite.close()
            return message

        async def late_connect() -> int | str:
            await asyncio.sleep(0.1)  # inside the grace period
            try:
                return await upgrade_status(url)
            except ConnectionRefusedError:
                return "refused"  # the listener closes first

        stopping = asyncio.ensure_future(rt.kernel.stop())
        polite_seen, late_status, (code, stubborn_seen) = await asyncio.gather(
            polite_client(), late_connect(), stubborn.expect_close(timeout=5)
        )
        await stopping
        assert polite_seen == {"type": "server_restart"}
        assert stubborn_seen == [{"type": "server_restart"}]
        assert code == 4200
        assert late_status == "refused"


def test_sigterm_sends_server_restart_then_4200(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat")
    config = {"realtime": {"shutdownGraceSeconds": 0.3}}
    with FaztProcess(apps, data_dir=tmp_path / "data", config=config) as proc:
        with sync_connect(proc.ws_url("chat"), open_timeout=5, close_timeout=2) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "connected"
            ws.send('{"type":"subscribe","channel":"c"}')
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            proc.send_signal(signal.SIGTERM)
            assert json.loads(ws.recv(timeout=5)) == {"type": "server_restart"}
            with pytest.raises(Exception) as closed:
                ws.recv(timeout=5)
            assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 4200
        assert proc.wait(timeout=10) == 0
