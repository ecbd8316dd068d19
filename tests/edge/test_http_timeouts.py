"""The ``http.*`` timeouts (header, keep-alive idle, body) on a real kernel over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import tornado.httpserver
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection

from fazt.config import ConfigError, KernelConfig
from fazt.edge.server import LISTEN_BACKLOG, EdgeSettings, bind_listeners
from tests.edge.rawhttp import FULL_HEAD, HALF_HEAD, RawConnection
from tests.harness import make_app, running_kernel


def _apps(tmp_path: Path) -> Path:
    make_app(tmp_path / "apps", "chat", files={"index.html": "hello"})
    return tmp_path / "apps"


def _config(**http: Any) -> dict[str, Any]:
    return {"plugins": [], "http": http}


@pytest.mark.gen_test(timeout=20)
async def test_a_trickled_head_is_cut_off_at_the_header_timeout(tmp_path: Path) -> None:
    config = _config(headerTimeoutSeconds=1)
    async with running_kernel(_apps(tmp_path), data_dir=tmp_path / "d", config=config) as k:
        loop = asyncio.get_running_loop()
        started = loop.time()
        connection = await RawConnection.open(k.port, HALF_HEAD)

        async def trickle() -> None:
            # One header byte every 0.1 s: the connection is never idle.
            with contextlib.suppress(ConnectionError):
                for _ in range(100):
                    await connection.send(b"X")
                    await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        try:
            assert await connection.closed_by_server(timeout=8)
            elapsed = loop.time() - started
        finally:
            trickling.cancel()
            await connection.close()
        assert 0.9 <= elapsed < 2.5, elapsed


@pytest.mark.gen_test(timeout=20)
async def test_keep_alive_waits_use_the_idle_timeout_not_the_header_timeout(
    tmp_path: Path,
) -> None:
    config = _config(headerTimeoutSeconds=0.5, idleConnectionTimeoutSeconds=2)
    async with running_kernel(_apps(tmp_path), data_dir=tmp_path / "d", config=config) as k:
        loop = asyncio.get_running_loop()
        connection = await RawConnection.open(k.port, FULL_HEAD)
        try:
            assert await connection.response() == (200, b"hello")
            # Idle longer than the header timeout: the next request is still served.
            await asyncio.sleep(1.0)
            await connection.send(FULL_HEAD)
            assert await connection.response() == (200, b"hello")
            idle_since = loop.time()
            assert await connection.closed_by_server(timeout=6)
            idle = loop.time() - idle_since
        finally:
            await connection.close()
        assert 1.8 <= idle < 3.5, idle


@pytest.mark.gen_test(timeout=20)
async def test_a_body_that_stops_coming_is_cut_off_at_the_body_timeout(tmp_path: Path) -> None:
    config = _config(bodyTimeoutSeconds=1)
    async with running_kernel(_apps(tmp_path), data_dir=tmp_path / "d", config=config) as k:
        loop = asyncio.get_running_loop()
        connection = await RawConnection.open(
            k.port,
            b"POST /_app/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123",
        )
        started = loop.time()
        try:
            assert await connection.closed_by_server(timeout=6)
            elapsed = loop.time() - started
        finally:
            await connection.close()
        assert 0.9 <= elapsed < 2.5, elapsed


def test_defaults_and_refusals() -> None:
    assert EdgeSettings.from_config(KernelConfig({})) == EdgeSettings(
        header_timeout_seconds=10,
        idle_connection_timeout_seconds=60,
        body_timeout_seconds=30,
        max_pending_connections=1000,
    )
    with pytest.raises(ConfigError, match=r"\$\.http\.headerTimeoutSeconds"):
        KernelConfig({"http": {"headerTimeoutSeconds": 0}})
    with pytest.raises(ConfigError, match=r"\$\.http\.maxPendingConnections"):
        KernelConfig({"http": {"maxPendingConnections": 1.5}})
    with pytest.raises(ConfigError, match=r"'headerTimeout' was unexpected"):
        KernelConfig({"http": {"headerTimeout": 5}})


def test_the_tornado_seams_the_edge_server_relies_on() -> None:
    """Public Tornado names ``fazt.edge.server`` uses; an upgrade that changes them fails here."""
    server = tornado.httpserver.HTTPServer(lambda request: None, idle_connection_timeout=7)
    # HTTPServer reads every request's headers under its idle timeout...
    assert server.conn_params.header_timeout == 7
    # ...through parameters that each request connection holds publicly.
    assert "params" in HTTP1Connection.__init__.__code__.co_names
    assert "stream" in HTTP1ServerConnection.__init__.__code__.co_names


def test_listeners_queue_a_reconnect_storm() -> None:
    # Thousands of clients reconnect at once after a restart: a short backlog
    # drops their SYNs and each pays a retransmit second. Nothing accepts here,
    # so every connection that completes its handshake sits in the backlog.
    assert LISTEN_BACKLOG >= 1024
    listeners = bind_listeners(0, "127.0.0.1")
    clients: list[socket.socket] = []
    try:
        port = listeners[0].getsockname()[1]
        for _ in range(400):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setblocking(False)
            clients.append(client)
            client.connect_ex(("127.0.0.1", port))
        deadline = time.monotonic() + 0.5  # well before a SYN retransmit (1 s)
        connected: set[socket.socket] = set()
        while len(connected) < len(clients) and time.monotonic() < deadline:
            _, writable, _ = select.select([], [c for c in clients if c not in connected], [], 0.05)
            connected.update(
                c for c in writable if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            )
        # Tornado's default backlog (128) would queue at most 129 of them.
        assert len(connected) == len(clients)
    finally:
        for sock in clients + listeners:
            sock.close()
