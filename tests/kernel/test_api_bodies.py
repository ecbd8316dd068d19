"""``/api`` request bodies: capped by ``http.maxBodyKB`` before they are read, and parsed
off the IOLoop, so big bodies cannot stall the server."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.harness import FaztProcess, make_app, running_kernel
from tests.kernel.util import fetch, json_body
from tests.realtime.wsclient import open_client

ECHO = "module.exports = (req) => ({ json: { bytes: req.body.length, json: req.json } });"
SIZE = "module.exports = (req) => ({ json: Array.isArray(req.json) ? req.json.length : -1 });"


def raw_exchange(port: int, head: str, body_parts: list[bytes], timeout: float = 5) -> bytes:
    """Send ``head`` and then each body part (stopping early if the server closes);
    return everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def status_and_json(raw: bytes) -> tuple[int, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.gen_test(timeout=30)
async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    tmp_path: Path,
) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat", files={"api/echo.js": ECHO})
    config = {"plugins": [], "http": {"maxBodyKB": 1}}
    async with running_kernel(apps, data_dir=tmp_path / "d", config=config) as k:
        head = (
            "POST /_app/chat/api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n"
        )
        # No body at all: the answer comes from the headers alone, then the server closes.
        raw = await asyncio.to_thread(raw_exchange, k.port, head, [])
        assert status_and_json(raw) == (
            413,
            {"error": "request body too large: the limit is 1 KB (http.maxBodyKB)"},
        )
        assert raw.count(b"HTTP/1.1") == 1  # one answer only
        fits = await fetch(
            k.url("chat", "/api/echo"), method="POST", body=b"[" + b"1," * 510 + b"11]"
        )
        assert fits.code == 200 and json_body(fits)["bytes"] == 1024


@pytest.mark.gen_test(timeout=30)
async def test_a_chunked_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat", files={"api/echo.js": ECHO})
    config = {"plugins": [], "http": {"maxBodyKB": 4}}
    async with running_kernel(apps, data_dir=tmp_path / "d", config=config) as k:
        head = (
            "POST /_app/chat/api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"  # 1 KB chunks, slowly enough to be read
        raw = await asyncio.to_thread(raw_exchange, k.port, head, [chunk] * 5)
        assert status_and_json(raw) == (
            413,
            {"error": "request body too large: the limit is 4 KB (http.maxBodyKB)"},
        )
        small = raw_exchange  # within the limit a chunked body reaches the handler whole
        raw = await asyncio.to_thread(
            small,
            k.port,
            head.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n"),
            [chunk, chunk, b"0\r\n\r\n"],
        )
        assert status_and_json(raw) == (200, {"bytes": 2048, "json": None})


@pytest.mark.gen_test(timeout=30)
async def test_the_default_limit_is_one_megabyte(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "chat", files={"api/size.js": SIZE})
    async with running_kernel(apps, data_dir=tmp_path / "d", config={"plugins": []}) as k:
        exactly = b"[" + b"0," * (512 * 1024 - 2) + b"10]"
        assert len(exactly) == 1024 * 1024
        ok = await fetch(k.url("chat", "/api/size"), method="POST", body=exactly)
        assert ok.code == 200 and json_body(ok) == 512 * 1024 - 1
        over = await fetch(k.url("chat", "/api/size"), method="POST", body=exactly + b" ")
        assert over.code == 413


def test_big_json_bodies_do_not_stall_the_ioloop(tmp_path: Path) -> None:
    """Four concurrent 10 MB JSON POSTs while a WebSocket client measures round trips."""
    apps = tmp_path / "apps"
    make_app(apps, "chat", files={"api/size.js": SIZE})
    config = {
        "http": {"maxBodyKB": 10 * 1024},
        "sandbox": {"memoryLimitMB": 512, "threads": 2},
        "realtime": {"shutdownGraceSeconds": 0.1},
    }
    body = json.dumps([{"id": i, "name": f"user{i}", "tags": ["a", "b"]} for i in range(170_000)])
    payload = body.encode()
    assert 9_000_000 < len(payload) < 10 * 1024 * 1024
    with FaztProcess(apps, data_dir=tmp_path / "d", config=config) as process:
        answers: list[int] = []

        def post() -> None:
            request = urllib.request.Request(
                process.url("chat", "/api/size"), data=payload, method="POST"
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append(json.loads(response.read()))

        async def measure() -> list[float]:
            client = await open_client(process.ws_url("chat"))
            try:
                posters = [threading.Thread(target=post) for _ in range(4)]
                for thread in posters:
                    thread.start()
                rtts: list[float] = []
                while any(thread.is_alive() for thread in posters):
                    started = time.monotonic()
                    assert await client.request({"type": "ping"}) == {"type": "pong"}
                    rtts.append(time.monotonic() - started)
                    await asyncio.sleep(0.01)
                for thread in posters:
                    thread.join()
                return rtts
            finally:
                await client.close()

        rtts = sorted(asyncio.run(measure()))
    assert answers == [170_000] * 4
    assert len(rtts) >= 10
    # Parsed on the IOLoop these bodies held it for hundreds of milliseconds each. What
    # is left is the worker's share of the GIL and a busy shared machine's scheduling.
    summary = f"median {statistics.median(rtts):.3f} s, p90 {rtts[len(rtts) * 9 // 10]:.3f} s"
    assert statistics.median(rtts) < 0.05, summary
    assert rtts[len(rtts) * 9 // 10] < 0.1, summary
