"""Out of file descriptors: the accept loop pauses and logs once, instead of spinning.

The test lowers this process's soft ``RLIMIT_NOFILE`` to 1 for a moment, so
that no new descriptor can be made (descriptors already open keep working) and
the kernel's ``accept()`` fails with EMFILE for real; ``finally`` restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fazt.edge.accept import ACCEPT_PAUSE_SECONDS
from tests.harness import make_app, running_kernel

CLIENTS = 20
WINDOW_SECONDS = 1.5


@contextlib.contextmanager
def no_descriptors_left() -> Iterator[None]:
    """Every new descriptor fails with EMFILE inside the block.

    The limit bounds descriptor numbers: with a soft limit of 1, a new
    descriptor could only be 0, which stays open.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _read_status(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


@pytest.mark.gen_test(timeout=30)
async def test_emfile_pauses_accepting_logs_once_and_never_spins(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_app(tmp_path / "apps", "chat", files={"index.html": "hello"})
    caplog.set_level(logging.DEBUG)
    config = {"plugins": []}
    async with running_kernel(tmp_path / "apps", data_dir=tmp_path / "d", config=config) as k:
        # Connected and asked before descriptors run out; they wait in the listen backlog.
        clients = [socket.create_connection(("127.0.0.1", k.port)) for _ in range(CLIENTS)]
        try:
            for client in clients:
                client.sendall(
                    b"GET /_app/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
            with no_descriptors_left():
                cpu_before = time.process_time()
                await asyncio.sleep(WINDOW_SECONDS)
                cpu = time.process_time() - cpu_before
            # Descriptors are back: within one pause every waiting client is served.
            statuses = await asyncio.gather(
                *(asyncio.to_thread(_read_status, client) for client in clients)
            )
        finally:
            for client in clients:
                client.close()
    assert statuses == [b"HTTP/1.1 200 OK"] * CLIENTS
    # A busy loop would burn the whole window; a paused one sleeps through it.
    assert cpu < 0.4 * WINDOW_SECONDS, f"{cpu:.2f} s of CPU in {WINDOW_SECONDS} s"
    messages = [record.getMessage() for record in caplog.records]
    failures = [m for m in messages if "cannot accept connections" in m]
    assert len(failures) == 1, failures
    assert "Too many open files (EMFILE)" in failures[0]
    assert f"not accepting for {ACCEPT_PAUSE_SECONDS:.2f} s" in failures[0]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
