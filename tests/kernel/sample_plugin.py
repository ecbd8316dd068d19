"""Test doubles for kernel tests: a recording plugin and a recording JS engine.

``RecordingPlugin`` is also loadable by import path in a ``fazt serve``
subprocess (``"plugins": ["tests.kernel.sample_plugin:RecordingPlugin"]``);
with ``{"recording": {"file": PATH}}`` it appends its hook calls to PATH, so a
test can see that SIGTERM ran the stop hook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.web

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext, HostFunction
from fazt.contracts.js_engine import JsResponse
from fazt.kernel.plugin import Plugin, PluginHost, PluginRoute


class EchoRouteHandler(tornado.web.RequestHandler):
    """Answers which app (or none) the kernel handed it, plus its route kwargs."""

    def initialize(self, kernel: PluginHost, app: App | None, greeting: str) -> None:
        self.kernel = kernel
        self.app = app
        self.greeting = greeting

    def get(self) -> None:
        self.write({"app": self.app.slug if self.app else None, "greeting": self.greeting})


async def _ping(context: HostCallContext, args: list[Any]) -> Any:
    return {"pong": args, "app": context.app.slug}


class RecordingPlugin(Plugin):
    """A plugin using every hook; records calls in ``events`` (and a file if configured)."""

    name = "recording"

    def __init__(self, name: str = "recording", events: list[str] | None = None) -> None:
        self.name = name
        self.events: list[str] = events if events is not None else []
        self.settings: dict[str, Any] = {}
        self.asset_path: Path | None = None
        self.fail_start = False

    def _record(self, event: str) -> None:
        self.events.append(f"{self.name}.{event}")
        file = self.settings.get("file")
        if file:
            with open(file, "a", encoding="utf-8") as handle:
                handle.write(f"{self.name}.{event}\n")

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"file": {"type": "string"}, "level": {"type": "integer"}},
            "additionalProperties": False,
        }

    def configure(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self._record("configure")

    def manifest_properties(self) -> dict[str, Any]:
        return {
            self.name: {
                "type": "object",
                "properties": {"enabled": {"type": "boolean"}},
                "additionalProperties": False,
            }
        }

    def manifest_limits_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"maxThings": {"type": "integer", "minimum": 1}},
            "additionalProperties": False,
        }

    def routes(self) -> list[PluginRoute]:
        return [PluginRoute(f"/_{self.name}", EchoRouteHandler, {"greeting": "hello"})]

    def assets(self) -> dict[str, Path]:
        return {f"{self.name}.js": self.asset_path} if self.asset_path else {}

    def js_namespace(self) -> dict[str, HostFunction]:
        return {"ping": _ping}

    async def start(self, kernel: PluginHost) -> None:
        self._record("start")
        if self.fail_start:
            raise RuntimeError(f"{self.name} refuses to start")

    async def stop(self, kernel: PluginHost) -> None:
        self._record("stop")


@dataclass(frozen=True)
class EngineCall:
    """One ``run_handler`` call, as the kernel made it."""

    context: HostCallContext
    handler_file: Path
    api_root: Path
    request: Mapping[str, Any]
    body: bytes


class RecordingEngine:
    """Stands in for the QuickJS engine: records calls, answers with ``response``.

    By default it echoes the request (and the body as text) as JSON.
    """

    def __init__(self) -> None:
        self.namespaces: dict[str, Mapping[str, HostFunction]] = {}
        self.calls: list[EngineCall] = []
        self.closed = False
        self.raise_error: Exception | None = None
        self.response: JsResponse | None = None

    def register_namespace(self, name: str, functions: Mapping[str, HostFunction]) -> None:
        self.namespaces[name] = functions

    async def run_handler(
        self,
        context: HostCallContext,
        handler_file: Path,
        api_root: Path,
        request: Mapping[str, Any],
        body: bytes,
    ) -> JsResponse:
        self.calls.append(EngineCall(context, handler_file, api_root, request, body))
        if self.raise_error is not None:
            raise self.raise_error
        if self.response is not None:
            return self.response
        echo = {"handler": handler_file.name, "request": request, "body": body.decode()}
        return JsResponse(200, {"Content-Type": "application/json"}, json.dumps(echo).encode())

    def close(self) -> None:
        self.closed = True


class NotAPlugin:
    """Importable, constructible, and not a ``Plugin``: ``load_plugin`` refuses it."""
