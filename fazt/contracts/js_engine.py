"""What the kernel asks of a JS engine, and the finished response it gets back.

The kernel codes against :class:`JsEngineLike`, not against the QuickJS bridge,
so the two evolve apart and tests can inject an engine. The engine owns every
rule about what a handler may answer (status range, header policy, bodies of
204 and 304): its :class:`JsResponse` is final and the kernel only writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fazt.contracts.host_calls import HostCallContext, HostFunction

JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class JsResponse:
    """A finished HTTP response: write it as it is.

    ``status`` is 200-599; ``headers`` are valid names and values that the
    handler was allowed to set (no framing headers); ``body`` is empty for
    204 and 304.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JsResponse:
    """A ``{"error": message}`` JSON response, the shape of every error fazt answers."""
    body = json.dumps({"error": message}).encode("utf-8")
    return JsResponse(status, {"Content-Type": JSON_TYPE, **(headers or {})}, body)


class JsEngineLike(Protocol):
    """The part of ``fazt.js_bridge.engine.JsEngine`` the kernel relies on."""

    def register_namespace(self, name: str, functions: Mapping[str, HostFunction]) -> None:
        """Expose ``functions`` to JS as ``fazt.<name>.<fn>``; ValueError for a taken name."""

    async def run_handler(
        self,
        context: HostCallContext,
        handler_file: Path,
        api_root: Path,
        request: Mapping[str, Any],
        body: bytes,
    ) -> JsResponse:
        """Run ``handler_file`` for one request.

        ``request`` holds the JSON fields of the handler's ``req`` (``method``,
        ``path``, ``query``, ``headers``, ``user``, ``app``); ``body`` is the raw
        request body, which the engine decodes (``req.body``, ``req.json``) off
        the IOLoop. Never raises for anything the handler does.
        """
        ...

    def close(self) -> None:
        """Stop the engine; later and queued calls answer 503."""
