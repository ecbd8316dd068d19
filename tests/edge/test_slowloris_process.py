"""Slowloris against a real ``fazt serve`` with few descriptors: others are still served.

The server runs under ``prlimit --nofile=300:300``; the test holds 400
connections that sent half a request head, more than the server has
descriptors. Meanwhile a plain request and a WebSocket upgrade must be served
at once, the server must not spin, and its log must stay a few lines long.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.edge.processes import EdgeFaztProcess, needs_prlimit
from tests.edge.procfs import cpu_seconds
from tests.edge.rawhttp import HALF_HEAD
from tests.harness import make_app
from tests.realtime.wsclient import open_client

pytestmark = needs_prlimit

SLOW_CLIENTS = 400
WINDOW_SECONDS = 2.0


def _open_half_heads(port: int, count: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
            with contextlib.suppress(OSError):  # the server may already have closed it
                sock.sendall(HALF_HEAD)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@pytest.mark.gen_test(timeout=90)
async def test_half_heads_beyond_the_fd_limit_leave_other_clients_served(tmp_path: Path) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "hello"})
    process = EdgeFaztProcess(tmp_path / "apps", data_dir=tmp_path / "d", nofile=(300, 300))
    with process:
        held = await asyncio.to_thread(_open_half_heads, process.port, SLOW_CLIENTS)
        try:
            await asyncio.sleep(0.5)
            cpu_before = cpu_seconds(process.pid)
            await asyncio.sleep(WINDOW_SECONDS)
            cpu = cpu_seconds(process.pid) - cpu_before

            started = time.monotonic()
            response = await AsyncHTTPClient().fetch(process.url("chat"), request_timeout=10)
            assert (response.code, response.body) == (200, b"hello")
            client = await open_client(process.ws_url("chat"))
            assert client.client_id
            await client.close()
            served_in = time.monotonic() - started
        finally:
            for sock in held:
                sock.close()
    log = process.log_text()
    assert cpu < 0.25 * WINDOW_SECONDS, f"{cpu:.2f} s of server CPU in {WINDOW_SECONDS} s"
    # Served at once, not after the header timeout (10 s) freed descriptors.
    assert served_in < 3.0, served_in
    assert len(log) < 4000, log
    assert log.count("closing new connections at once") == 1, log
    assert "Traceback" not in log and "cannot accept connections" not in log, log
