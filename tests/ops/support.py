"""An in-process kernel with its admin listener on a free port, and a small API client."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import tornado.httpclient
import tornado.netutil
from prometheus_client.parser import text_string_to_metric_families

from fazt.ops.backend import RealtimeAdmin
from fazt.ops.server import AdminServer
from tests.realtime.wsclient import Realtime, realtime_kernel

TOKEN = "test-admin-token-0123456789"


class Admin:
    """A running admin listener and the kernel behind it."""

    def __init__(self, rt: Realtime, listener: AdminServer, port: int) -> None:
        self.rt = rt
        self.listener = listener
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._client = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        body: object = None,
        raw_body: bytes | None = None,
        token: str | None = TOKEN,
    ) -> tuple[int, Any]:
        """``(status, decoded JSON or text)`` of one request."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
        if method == "POST" and data is None:
            data = b""
        response = await self._client.fetch(
            self.url + path, method=method, body=data, headers=headers, raise_error=False
        )
        text = response.body.decode() if response.body else ""
        content_type = response.headers.get("Content-Type", "")
        return response.code, json.loads(text) if "json" in content_type else text

    async def get(self, path: str, **kwargs: Any) -> Any:
        status, value = await self.fetch(path, **kwargs)
        assert status == 200, (path, status, value)
        return value

    async def post(self, path: str, body: object) -> Any:
        status, value = await self.fetch(path, method="POST", body=body)
        assert status == 200, (path, status, value)
        return value

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of ``/metrics``: (name, labels) -> value."""
        status, text = await self.fetch("/metrics", token=None)
        assert status == 200
        return samples(text)

    def close(self) -> None:
        self._client.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sample ``name{labels}``, 0 when absent (a counter not yet touched)."""
    return found.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def admin_kernel(
    tmp_path: Path,
    apps: Mapping[str, Mapping[str, Any]] | None = None,
    realtime: Mapping[str, Any] | None = None,
    files: Mapping[str, Mapping[str, str]] | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> AsyncIterator[Admin]:
    """A realtime kernel (``realtime_kernel``) plus its admin listener."""
    async with realtime_kernel(tmp_path, apps, realtime, files, extra_config) as rt:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        port = int(sockets[0].getsockname()[1])
        listener = AdminServer(RealtimeAdmin(rt.kernel.apps, rt.plugin), TOKEN)
        await listener.start(sockets)
        admin = Admin(rt, listener, port)
        try:
            yield admin
        finally:
            admin.close()
            await listener.stop()
