"""The kernel's view of the JS engine (``fazt.js_bridge``), and how it is made.

The kernel codes against the small protocol below rather than the bridge's
class, so the two packages can evolve apart and tests can inject an engine.
``create_engine`` builds the real ``fazt.js_bridge.engine.JsEngine``; when the
bridge cannot be imported, the kernel still serves static files and plugin
routes, and every ``/api/...`` call answers 503 with the import error.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fazt.kernel.plugin import HostCallContext, HostFunction

log = logging.getLogger("fazt.kernel")


class JsResponseLike(Protocol):
    """What a handler run produces: an HTTP status, headers and body bytes."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def body(self) -> bytes: ...


class JsEngineLike(Protocol):
    """The part of ``fazt.js_bridge.engine.JsEngine`` the kernel relies on."""

    def register_namespace(self, name: str, functions: Mapping[str, HostFunction]) -> None: ...

    async def run_handler(
        self,
        context: HostCallContext,
        handler_file: Path,
        api_root: Path,
        request: dict[str, Any],
    ) -> JsResponseLike: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class UnavailableEngine:
    """Stands in when ``fazt.js_bridge`` cannot be imported: every call is a 503."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def register_namespace(self, name: str, functions: Mapping[str, HostFunction]) -> None:
        pass

    async def run_handler(
        self,
        context: HostCallContext,
        handler_file: Path,
        api_root: Path,
        request: dict[str, Any],
    ) -> JsResponseLike:
        body = json.dumps({"error": f"JS engine not available: {self.reason}"}).encode()
        return _Response(503, {"Content-Type": "application/json; charset=utf-8"}, body)

    def close(self) -> None:
        pass


def create_engine(*, time_limit_seconds: float, memory_limit_mb: int, threads: int) -> JsEngineLike:
    """The real QuickJS engine, or ``UnavailableEngine`` when the bridge is missing."""
    try:
        # Imported by name so the kernel type-checks against JsEngineLike only.
        bridge = importlib.import_module("fazt.js_bridge.engine")
    except ImportError as error:
        log.error("fazt.js_bridge cannot be imported (%s): /api/... calls will answer 503", error)
        return UnavailableEngine(str(error))
    engine: JsEngineLike = bridge.JsEngine(
        time_limit_seconds=time_limit_seconds, memory_limit_mb=memory_limit_mb, threads=threads
    )
    return engine
