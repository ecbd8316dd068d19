"""Fixtures with pytest-tornado's names and semantics, kept in-house.

pytest-tornado 0.8.1 imports ``pkg_resources``, which warns on setuptools 80-81
and is gone in 82+, so under ``filterwarnings = error`` it cannot even load. These
fixtures keep its names (``io_loop``, ``http_port``, ``base_url``,
``http_server``, ``http_client``, and an ``app`` fixture the test module
provides) and its ``@pytest.mark.gen_test(timeout=...)`` marker.

Every test gets a fresh asyncio loop; a ``gen_test`` coroutine runs on it with
a timeout, and the servers it starts are real sockets on free ports.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.ioloop
import tornado.testing
import tornado.web

DEFAULT_TIMEOUT_SECONDS = 10.0


@pytest.fixture
def io_loop() -> Iterator[tornado.ioloop.IOLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    io_loop = tornado.ioloop.IOLoop.current()
    yield io_loop
    # Let callbacks scheduled by closing servers and clients run before closing.
    loop.run_until_complete(asyncio.sleep(0))
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    io_loop.close(all_fds=False)
    asyncio.set_event_loop(None)


@pytest.fixture
def _unused_socket() -> Iterator[socket.socket]:
    sock, _port = tornado.testing.bind_unused_port()
    yield sock
    sock.close()


@pytest.fixture
def http_port(_unused_socket: socket.socket) -> int:
    return int(_unused_socket.getsockname()[1])


@pytest.fixture
def base_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"


@pytest.fixture
def http_server(
    io_loop: tornado.ioloop.IOLoop, app: tornado.web.Application, _unused_socket: socket.socket
) -> Iterator[tornado.httpserver.HTTPServer]:
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([_unused_socket])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=DEFAULT_TIMEOUT_SECONDS)


@pytest.fixture
def http_client(
    io_loop: tornado.ioloop.IOLoop, http_server: tornado.httpserver.HTTPServer
) -> Iterator[tornado.httpclient.AsyncHTTPClient]:
    client = tornado.httpclient.AsyncHTTPClient()
    yield client
    client.close()


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("gen_test")
    if marker is None:
        if inspect.iscoroutinefunction(pyfuncitem.obj):
            raise pytest.UsageError(f"{pyfuncitem.nodeid}: async test needs @pytest.mark.gen_test")
        return None
    timeout = marker.kwargs.get("timeout", DEFAULT_TIMEOUT_SECONDS)
    io_loop = pyfuncitem.funcargs.get("io_loop")
    if io_loop is None:
        raise pytest.UsageError(f"{pyfuncitem.nodeid}: gen_test needs the io_loop fixture")
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
    io_loop.run_sync(lambda: pyfuncitem.obj(**kwargs), timeout=timeout)
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # gen_test implies io_loop, as in pytest-tornado.
    for item in items:
        needs_loop = item.get_closest_marker("gen_test") and isinstance(item, pytest.Function)
        if needs_loop and "io_loop" not in item.fixturenames:
            item.fixturenames.insert(0, "io_loop")
