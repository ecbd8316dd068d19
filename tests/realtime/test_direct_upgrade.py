"""A plain ``/_ws`` upgrade is answered by fazt from the socket (``direct_upgrade``);
everything else still goes through the Tornado handler, with the same answers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from fazt.contracts.app import App
from fazt.edge.request_head import parse_upgrade_head
from fazt.realtime.direct_upgrade import DirectUpgrade
from fazt.realtime.endpoint import Endpoint
from fazt.realtime.transport import WriteCoalescer
from tests.realtime.rawws import TIMEOUT, RawClient, text
from tests.realtime.wsclient import realtime_kernel, upgrade_status

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def _head(path: str, extra: str = "", version: str = "13") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n{extra}\r\n"
    ).encode()


async def _answer(port: int, data: bytes) -> tuple[str, dict[str, str], RawClient]:
    """Send ``data`` on a new connection; the status line, headers and the client."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status, *lines = raw.decode().split("\r\n")[:-2]
    headers = {name.lower(): value.strip() for name, _, value in (x.partition(":") for x in lines)}
    return status, headers, RawClient(reader, writer)


@pytest.mark.gen_test(timeout=30)
async def test_a_plain_upgrade_is_answered_without_tornado_and_early_frames_are_kept(
    tmp_path: Path,
) -> None:
    async with realtime_kernel(tmp_path) as rt:
        port = rt.running.port
        # A subscribe sent in the same segment as the head waits in the socket for
        # the reader: it is answered after "connected".
        early = text(json.dumps({"type": "subscribe", "channel": "room"}))
        status, headers, client = await _answer(port, _head("/_app/chat/_ws") + early)
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert headers["sec-websocket-accept"] == ACCEPT
        assert headers["upgrade"] == "websocket"
        assert "server" not in headers  # fazt's own 101, not Tornado's
        assert json.loads(await client.json_frame())["type"] == "connected"
        assert json.loads(await client.json_frame()) == {"type": "subscribed", "channel": "room"}
        await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_what_fazt_does_not_read_itself_still_gets_tornados_answers(
    tmp_path: Path,
) -> None:
    async with realtime_kernel(tmp_path) as rt:
        port = rt.running.port
        # A query with escapes: Tornado's handler upgrades it, as before.
        status, headers, client = await _answer(port, _head("/_app/chat/_ws?x=%41"))
        assert status.startswith("HTTP/1.1 101") and headers["server"].startswith("Tornado")
        assert json.loads(await client.json_frame())["type"] == "connected"
        await client.close()
        # A bad token: 401 with the reason, from the handler.
        status, _, client = await _answer(port, _head("/_app/chat/_ws?token=nope"))
        assert status.startswith("HTTP/1.1 401")
        await client.close()
        # Version 8: 426; no key: 400; an unknown app: upgraded, then closed 4001.
        status, _, client = await _answer(port, _head("/_app/chat/_ws", version="8"))
        assert status.startswith("HTTP/1.1 426")
        await client.close()
        no_key = _head("/_app/chat/_ws").replace(f"Sec-WebSocket-Key: {KEY}\r\n".encode(), b"")
        status, _, client = await _answer(port, no_key)
        assert status.startswith("HTTP/1.1 400")
        await client.close()
        status, _, client = await _answer(port, _head("/_app/nope/_ws"))
        assert status.startswith("HTTP/1.1 101")
        assert (await client.ending()).close.close_code == 4001  # type: ignore[union-attr]
        await client.close()


@pytest.mark.gen_test(timeout=30)
async def test_over_capacity_the_direct_upgrade_answers_503_with_the_handlers_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tornado.access")
    async with realtime_kernel(tmp_path, realtime={"limits": {"maxConnectionsPerApp": 1}}) as rt:
        first = await rt.client("chat")
        status, headers, client = await _answer(rt.running.port, _head("/_app/chat/_ws?v=1"))
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert headers["content-type"] == "application/json"
        body = await asyncio.wait_for(client.reader.read(), TIMEOUT)  # then it is closed
        assert json.loads(body) == {
            "error": "realtime connection limit reached",
            "code": "over_capacity",
        }
        await client.close()
        assert await upgrade_status(rt.url("chat")) == 503
        await first.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert any(line.startswith("503 GET /_app/chat/_ws?v=1 (127.0.0.1) ") for line in lines)
    assert any(line.startswith("101 GET /_app/chat/_ws (127.0.0.1) ") for line in lines)


@pytest.mark.gen_test(timeout=10)
async def test_openings_that_wait_on_io_are_bounded_and_the_rest_left_to_the_handler() -> None:
    gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def admit(app: App) -> bool:
        return await gate  # admission waiting on the backplane (as on Redis)

    def unused(*args: object) -> Any:
        raise AssertionError("not reached: both openings are refused")

    endpoint = Endpoint(
        verify_token=unused,
        admit=admit,
        connect=unused,
        receive=unused,
        disconnected=unused,
        max_message_bytes=lambda app: 1024,
        queue_size=8,
        coalescer=WriteCoalescer(),
        inline=False,
    )
    direct = DirectUpgrade(endpoint, max_waiting=2)
    app = App(slug="chat", uuid="u-chat", root=Path("/nonexistent"))
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        taken = []
        for client, server in pairs:
            client.sendall(_head("/_app/chat/_ws"))
            head = parse_upgrade_head(server.recv(4096, socket.MSG_PEEK), ("127.0.0.1", 1))
            assert head is not None
            taken.append(direct(server, head, app))
        assert taken == [True, True, False]  # the third is the handler's (pending cap)
        assert pairs[2][1].recv(4096, socket.MSG_PEEK).startswith(b"GET ")  # left unread
        gate.set_result(False)
        loop = asyncio.get_running_loop()
        for client, _ in pairs[:2]:
            client.setblocking(False)
            answer = await asyncio.wait_for(loop.sock_recv(client, 4096), TIMEOUT)
            assert answer.startswith(b"HTTP/1.1 503 ")
    finally:
        for client, server in pairs:
            client.close()
            server.close()
