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
from typing import Any, Literal, Protocol

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


@dataclass(frozen=True)
class ExportResult:
    """What calling one named export of a module gave (``JsEngineLike.call_export``).

    ``outcome`` is ``"returned"`` (the function returned or its Promise
    resolved: ``value`` is the JSON-decoded value, and ``undefined`` says it
    was ``undefined``), ``"missing"`` (no such module, or it exports no function
    of that name) or ``"failed"`` (it threw, rejected, ran over a limit, or the
    engine was too busy to run it). ``error`` says why, in one line, for the
    last two; the engine has already written the app's log line for a throw or
    a limit.
    """

    outcome: Literal["returned", "missing", "failed"]
    value: Any = None
    undefined: bool = False
    error: str = ""


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

    async def call_export(
        self,
        context: HostCallContext,
        module_file: Path,
        api_root: Path,
        name: str,
        argument: Mapping[str, Any],
        *,
        wall_time_limit_seconds: float | None = None,
    ) -> ExportResult:
        """Call ``module.exports[name](argument)`` of ``module_file`` (inside ``api_root``)
        and await what it returns, on the same workers and limits as handlers.

        ``wall_time_limit_seconds`` lowers the sandbox's wall-clock limit for this
        call (counted from now, queueing included); the JS is interrupted when it
        runs out. Never raises for anything the JS does.
        """
        ...

    async def module_functions(
        self, context: HostCallContext, module_file: Path, api_root: Path
    ) -> ExportResult:
        """Load ``module_file`` in the sandbox: on success ``value`` is the sorted list
        of the names of the functions it exports."""
        ...

    def close(self) -> None:
        """Stop the engine; later and queued calls answer 503."""
