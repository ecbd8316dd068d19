"""``http.maxPendingConnections``: connections that have not finished their headers or upgrade."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.edge.rawhttp import FULL_HEAD, HALF_HEAD, RawConnection
from tests.harness import make_app, running_kernel
from tests.realtime.wsclient import open_client

EDGE_PLUGIN = "tests.edge.edge_plugin:EdgeTestPlugin"
REFUSAL_LINE = "closing new connections at once"


def _upgrade_head(token: str) -> bytes:
    return (
        f"GET /_app/chat/_ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def _accepted(connection: RawConnection) -> bool:
    """Still open 0.3 s after connecting: the server kept it (as pending)."""
    return not await connection.closed_by_server(timeout=0.3)


@pytest.mark.gen_test(timeout=30)
async def test_over_the_cap_new_slow_connections_are_closed_and_the_rest_are_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "hello"})
    config = {"http": {"maxPendingConnections": 3}}
    caplog.set_level(logging.WARNING, logger="fazt.edge")
    async with running_kernel(tmp_path / "apps", data_dir=tmp_path / "d", config=config) as k:
        held: list[RawConnection] = []
        try:
            for _ in range(3):
                held.append(await RawConnection.open(k.port, HALF_HEAD))
                assert await _accepted(held[-1])
            # The cap is full: new slow connections are closed at once, several times over.
            for _ in range(5):
                extra = await RawConnection.open(k.port, HALF_HEAD)
                assert await extra.closed_by_server(timeout=1)
                await extra.close()
            # A client that sends its whole request at once is still served...
            quick = await RawConnection.open(k.port, FULL_HEAD)
            assert await quick.response() == (200, b"hello")
            await quick.close()
            # ...and so is a WebSocket upgrade.
            client = await open_client(k.ws_url("chat"))
            await client.close()
            # The oldest pending connection was not pushed out: it finishes and is served.
            await held[0].send(b"\r\n")
            assert await held[0].response() == (200, b"hello")
            # It is no longer pending, so there is room for one new slow connection.
            held.append(await RawConnection.open(k.port, HALF_HEAD))
            assert await _accepted(held[-1])
        finally:
            for connection in held:
                await connection.close()
    refusals = [r for r in caplog.records if REFUSAL_LINE in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert "3 connections have not finished their headers or upgrade" in refusals[0].getMessage()


@pytest.mark.gen_test(timeout=30)
async def test_an_upgrade_is_pending_until_it_is_answered(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat")
    config = {"http": {"maxPendingConnections": 1}}
    async with running_kernel(tmp_path / "apps", data_dir=tmp_path / "d", config=config) as k:
        good = k.kernel.tokens.issue("alice")
        # A refused upgrade (401) on a keep-alive connection: answered, so no longer pending.
        refused = await RawConnection.open(k.port, _upgrade_head("not-a-token"))
        status, _body = await refused.response()
        assert status == 401
        slow = await RawConnection.open(k.port, HALF_HEAD)
        assert await _accepted(slow)
        await slow.close()
        # An accepted upgrade leaves the HTTP server: no longer pending either.
        client = await open_client(k.ws_url("chat"), good)
        slow = await RawConnection.open(k.port, HALF_HEAD)
        assert await _accepted(slow)
        # Now the cap is full again.
        extra = await RawConnection.open(k.port, HALF_HEAD)
        assert await extra.closed_by_server(timeout=1)
        for connection in (extra, slow, refused):
            await connection.close()
        await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_upgrade_request_counts_as_pending_while_it_waits_for_its_answer(
    tmp_path: Path,
) -> None:
    make_app(tmp_path / "apps", "chat")
    config = {"plugins": [EDGE_PLUGIN], "http": {"maxPendingConnections": 1}}
    async with running_kernel(tmp_path / "apps", data_dir=tmp_path / "d", config=config) as k:
        # /_slow answers after half a second; until then this upgrade is pending.
        upgrade = await RawConnection.open(
            k.port,
            b"GET /_app/chat/_slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        await asyncio.sleep(0.1)
        extra = await RawConnection.open(k.port, HALF_HEAD)
        assert await extra.closed_by_server(timeout=0.3)
        await extra.close()
        assert (await upgrade.response())[0] == 400
        slow = await RawConnection.open(k.port, HALF_HEAD)
        assert await _accepted(slow)
        for connection in (slow, upgrade):
            await connection.close()
