"""How the kernel gets its JS engine: the QuickJS bridge, or a stand-in that answers 503.

``create_engine`` builds ``fazt.js_bridge.engine.JsEngine`` from the kernel
config. When the bridge cannot be imported (e.g. the ``quickjs`` wheel is
missing), the kernel still serves static files and plugin routes, and every
``/api/...`` call answers 503 with the import error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fazt.config import KernelConfig
from fazt.contracts.host_calls import HostCallContext, HostFunction
from fazt.contracts.js_engine import ExportResult, JsEngineLike, JsResponse, json_error

log = logging.getLogger("fazt.kernel")


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
        request: Mapping[str, Any],
        body: bytes,
    ) -> JsResponse:
        return json_error(503, f"JS engine not available: {self.reason}")

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
        return ExportResult("failed", error=f"JS engine not available: {self.reason}")

    async def module_functions(
        self, context: HostCallContext, module_file: Path, api_root: Path
    ) -> ExportResult:
        return ExportResult("failed", error=f"JS engine not available: {self.reason}")

    def close(self) -> None:
        pass


def create_engine(config: KernelConfig) -> JsEngineLike:
    """The QuickJS engine with the config's ``sandbox`` limits, or ``UnavailableEngine``."""
    try:
        # Imported here, not at the top: the kernel must load without QuickJS.
        from fazt.js_bridge.engine import JsEngine
    except ImportError as error:
        log.error("fazt.js_bridge cannot be imported (%s): /api/... calls will answer 503", error)
        return UnavailableEngine(str(error))
    return JsEngine(
        time_limit_seconds=config.sandbox_time_limit_seconds,
        wall_time_limit_seconds=config.sandbox_wall_time_limit_seconds,
        memory_limit_mb=config.sandbox_memory_limit_mb,
        threads=config.sandbox_threads,
        max_concurrent_per_app=config.sandbox_max_concurrent_per_app,
        max_queued_per_app=config.sandbox_max_queued_per_app,
        console_limit_bytes=config.sandbox_console_limit_bytes,
    )
