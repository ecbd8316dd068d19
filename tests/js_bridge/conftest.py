"""Fixtures for driving ``JsEngine`` directly: real IOLoop, real worker threads, real QuickJS.

Handlers are written into ``tmp_path``; ``JsHarness.run`` calls ``run_handler``
the way the kernel does and decodes the response.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext, HostCallError
from fazt.js_bridge import JsEngine, JsResponse

#: Small limits keep the limit tests short.
TIME_LIMIT = 0.5
MEMORY_LIMIT_MB = 16


def make_request(**overrides: Any) -> dict[str, Any]:
    """The JSON fields of ``req`` as the kernel builds them (the engine adds body and json)."""
    request: dict[str, Any] = {
        "method": "GET",
        "path": "/api/test",
        "query": {},
        "headers": {"host": "alpha.localhost"},
        "user": None,
        "app": {"slug": "alpha", "uuid": "app_alpha"},
    }
    request.update(overrides)
    return request


@dataclass
class HostRecorder:
    """The ``fazt.test`` namespace: host functions that record how they were called."""

    calls: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    gate: asyncio.Event | None = None

    def namespace(self) -> dict[str, Any]:
        async def echo(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("echo", ctx, args)
            return {"app": ctx.app.slug, "args": args}

        async def fail(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("fail", ctx, args)
            raise HostCallError(f"fazt.test.fail: {args[0] if args else 'no reason'}")

        async def crash(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("crash", ctx, args)
            raise RuntimeError("secret python detail")

        async def unjsonable(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("unjsonable", ctx, args)
            return {1, 2}

        async def wait(ctx: HostCallContext, args: list[Any]) -> Any:
            # Resolves only once `release` ran: proves calls of one turn run together.
            self._note("wait", ctx, args)
            if self.gate is None:
                self.gate = asyncio.Event()
            await asyncio.wait_for(self.gate.wait(), timeout=2)
            return "released"

        async def release(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("release", ctx, args)
            if self.gate is None:
                self.gate = asyncio.Event()
            self.gate.set()
            return "done"

        async def nap(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("nap", ctx, args)
            await asyncio.sleep(float(args[0]))
            return "rested"

        return {
            "nap": nap,
            "echo": echo,
            "fail": fail,
            "crash": crash,
            "unjsonable": unjsonable,
            "wait": wait,
            "release": release,
        }

    def _note(self, name: str, ctx: HostCallContext, args: list[Any]) -> None:
        self.calls.append((name, ctx.app.slug, args))
        self.threads.add(threading.get_ident())


class JsHarness:
    """An engine plus two apps (alpha, beta), each with an ``api/`` folder in tmp_path."""

    def __init__(self, engine: JsEngine, tmp_path: Path, host: HostRecorder) -> None:
        self.engine = engine
        self.host = host
        self.tmp_path = tmp_path
        self.apps: dict[str, App] = {}
        for slug in ("alpha", "beta"):
            root = tmp_path / slug
            (root / "api").mkdir(parents=True)
            self.apps[slug] = App(slug=slug, uuid=f"app_{slug}", root=root)

    def api(self, app: str = "alpha") -> Path:
        return self.apps[app].root / "api"

    def write(self, name: str, source: str, app: str = "alpha") -> Path:
        path = self.api(app) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        return path

    def touch_later(self, path: Path) -> None:
        """Move the mtime forward so an edit is visible even within one clock tick."""
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    async def run(
        self,
        name: str,
        app: str = "alpha",
        request: dict[str, Any] | None = None,
        body: bytes = b"",
    ) -> JsResponse:
        the_app = self.apps[app]
        context = HostCallContext(app=the_app)
        req = (
            request
            if request is not None
            else make_request(app={"slug": app, "uuid": the_app.uuid})
        )
        return await self.engine.run_handler(
            context, self.api(app) / name, self.api(app), req, body
        )

    async def json(
        self,
        name: str,
        app: str = "alpha",
        request: dict[str, Any] | None = None,
        body: bytes = b"",
    ) -> Any:
        """Run and decode a JSON response, whatever its status."""
        response = await self.run(name, app, request, body)
        return json.loads(response.body)


@pytest.fixture
def host() -> HostRecorder:
    return HostRecorder()


def _engine(host: HostRecorder, threads: int) -> JsEngine:
    engine = JsEngine(
        time_limit_seconds=TIME_LIMIT, memory_limit_mb=MEMORY_LIMIT_MB, threads=threads
    )
    engine.register_namespace("test", host.namespace())
    return engine


@pytest.fixture
def js(tmp_path: Path, host: HostRecorder) -> Iterator[JsHarness]:
    engine = _engine(host, threads=2)
    yield JsHarness(engine, tmp_path, host)
    engine.close()


@pytest.fixture
def js1(tmp_path: Path, host: HostRecorder) -> Iterator[JsHarness]:
    """One worker thread: every request of an app meets the same warm context."""
    engine = _engine(host, threads=1)
    yield JsHarness(engine, tmp_path, host)
    engine.close()
