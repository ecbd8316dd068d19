"""The kernel's Tornado handlers: static files, ``/api/*`` JS calls, assets, errors.

Every error a client can cause is answered as JSON ``{"error": "..."}`` with a
fitting status; Python tracebacks only ever reach the server log.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import tornado.http1connection
import tornado.web

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext
from fazt.contracts.js_engine import JsEngineLike
from fazt.kernel.paths import api_handler_file, decode_segments, is_served, static_path_ok
from fazt.kernel.tokens import TokenError, TokenService

log = logging.getLogger("fazt.kernel")

ALL_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")


class _IterationMemo(threading.local):
    """``api_handler_file`` results shared by the requests of one IOLoop iteration.

    Requests that arrived together resolve their handler file once: resolving
    takes an ``lstat`` per path segment, and each one hands the GIL to a JS
    worker and back. The memo is emptied when the iteration ends, so a file
    added or removed is seen by the next iteration's requests. Per thread,
    because each IOLoop runs on its own thread.
    """

    def __init__(self) -> None:
        self.results: dict[tuple[Path, str], Path | None] = {}

    def handler_file(self, app_root: Path, name: str) -> Path | None:
        key = (app_root, name)
        results = self.results
        if key in results:
            return results[key]
        if not results:
            asyncio.get_running_loop().call_soon(results.clear)
        found = results[key] = api_handler_file(app_root, name)
        return found


_memo = _IterationMemo()


@functools.lru_cache(maxsize=1024)
def _api_root(app_root: Path) -> Path:
    """``app_root / "api"``, made once per app (a ``Path`` join costs ~2 µs per request)."""
    return app_root / "api"


class JsonErrorsMixin(tornado.web.RequestHandler):
    """Errors as ``{"error": message}`` JSON, never Tornado's HTML page."""

    def send_json_error(self, status: int, message: str) -> None:
        self.clear()
        self.set_status(status)
        self._finish_json_error(message)

    def _finish_json_error(self, message: str) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        message = self._reason.lower() if status_code != 500 else "internal server error"
        error = exc_info[1] if exc_info else None
        # Our own HTTPErrors carry a client-safe message in log_message.
        if isinstance(error, tornado.web.HTTPError) and error.log_message and status_code < 500:
            message = error.log_message % error.args if error.args else error.log_message
        self._finish_json_error(message)


class NotFoundHandler(JsonErrorsMixin):
    """404 JSON for any method: unknown app, unknown host, unknown asset."""

    SUPPORTED_METHODS = ALL_METHODS

    def initialize(self, message: str) -> None:
        self._message = message

    def prepare(self) -> None:
        self.send_json_error(404, self._message)


class SlashRedirectHandler(JsonErrorsMixin):
    """``/_app/<slug>`` -> ``/_app/<slug>/`` so relative URLs in pages work."""

    def initialize(self, location: str) -> None:
        self._location = location

    def get(self) -> None:
        self.redirect(self._location, permanent=False)

    def head(self) -> None:
        self.redirect(self._location, permanent=False)


class StaticHandler(JsonErrorsMixin, tornado.web.StaticFileHandler):
    """An app's static files, ``index.html`` for folders, traversal-proof (see paths)."""

    def initialize(self, app: App, inner_path: str) -> None:  # type: ignore[override]
        super().initialize(path=str(app.root), default_filename="index.html")
        self._inner_path = inner_path
        self._real_root = str(app.root)  # resolved by the registry

    async def get(self, path: str = "", include_body: bool = True) -> None:
        segments = decode_segments(self._inner_path)
        if segments is None or not is_served(segments):
            raise tornado.web.HTTPError(404, "not found")
        await super().get("/".join(segments), include_body=include_body)

    async def head(self, path: str = "") -> None:
        await self.get(path, include_body=False)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # Our own check first (Tornado before 6.6 did not resolve symlinks),
        # so that a symlink out answers 404 like any other refusal, not 403.
        if not static_path_ok(self._real_root, absolute_path):
            raise tornado.web.HTTPError(404, "not found")
        try:
            checked = super().validate_absolute_path(root, absolute_path)
        except tornado.web.HTTPError as error:
            if error.status_code == 403:
                raise tornado.web.HTTPError(404, "not found") from error
            raise
        # Again for the folder's index.html (and Tornado's resolved target).
        if checked is not None and not static_path_ok(self._real_root, checked):
            raise tornado.web.HTTPError(404, "not found")
        return checked

    def compute_etag(self) -> str | None:
        # Tornado's default hashes the content once and caches it for the
        # process's life, so an edited file would keep its old ETag and
        # browsers would get 304s for stale content. mtime + size changes
        # with every edit and costs one stat.
        if self.absolute_path is None:
            return None
        info = os.stat(self.absolute_path)
        return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


class AssetHandler(JsonErrorsMixin, tornado.web.StaticFileHandler):
    """``/_fazt/<name>``: a file a plugin (or the kernel) ships for every app."""

    def initialize(self, assets: Mapping[str, Path], name: str) -> None:  # type: ignore[override]
        self._asset = assets.get(unquote(name))
        folder = str(self._asset.parent) if self._asset else os.devnull
        super().initialize(path=folder)

    async def get(self, path: str = "", include_body: bool = True) -> None:
        if self._asset is None or not self._asset.is_file():
            raise tornado.web.HTTPError(404, "no such asset")
        await super().get(self._asset.name, include_body=include_body)

    async def head(self, path: str = "") -> None:
        await self.get(path, include_body=False)


@dataclass(frozen=True)
class ApiEndpoint:
    """What ``/api`` handlers use of the kernel: tokens, the JS engine, the body limit."""

    tokens: TokenService
    engine: JsEngineLike
    max_body_bytes: int


#: Tornado's per-request body cap while ``ApiHandler`` counts a chunked body itself.
_UNCAPPED = 2**62


def _declared_length(headers: Mapping[str, str]) -> int | None:
    """The request's ``Content-Length`` when it is one plain number (Tornado refuses others)."""
    value = headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


@tornado.web.stream_request_body
class ApiHandler(JsonErrorsMixin):
    """``/api/<name>``: runs ``api/<name>.js`` in the JS engine and writes its answer.

    The body is received here, chunk by chunk, and refused with 413 as soon as
    it is over ``http.maxBodyKB``: from ``Content-Length`` before any of it is
    read, or, for a chunked body, when the bytes so far pass the limit (the
    connection is then closed). It reaches the engine as raw bytes: decoding
    and JSON parsing happen on a worker thread, never on the IOLoop.
    """

    SUPPORTED_METHODS = ALL_METHODS

    def initialize(self, endpoint: ApiEndpoint, app: App, name: str) -> None:
        self._endpoint = endpoint
        self.app = app
        self._name = name
        self._chunks: list[bytes] = []
        self._received = 0

    def prepare(self) -> None:
        limit = self._endpoint.max_body_bytes
        declared = _declared_length(self.request.headers)
        connection = self.request.connection
        if declared is not None and declared > limit:
            if isinstance(connection, tornado.http1connection.HTTP1Connection):
                # Tornado reads on after this answer until the connection closes;
                # its own cap must not add a second (400) answer.
                connection.set_max_body_size(declared)
            self._refuse_body()
            return
        if declared is None and isinstance(connection, tornado.http1connection.HTTP1Connection):
            # A chunked body is counted in data_received and cut there with a 413,
            # before Tornado's own cap would answer a bare 400.
            connection.set_max_body_size(_UNCAPPED)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._received += len(chunk)
        if self._received > self._endpoint.max_body_bytes:
            self._chunks.clear()
            self._refuse_body()
            return
        self._chunks.append(chunk)

    def _refuse_body(self) -> None:
        kb = self._endpoint.max_body_bytes // 1024
        self.send_json_error(413, f"request body too large: the limit is {kb} KB (http.maxBodyKB)")

    async def get(self) -> None:
        await self._run()

    async def head(self) -> None:
        await self._run()

    async def post(self) -> None:
        await self._run()

    async def put(self) -> None:
        await self._run()

    async def patch(self) -> None:
        await self._run()

    async def delete(self) -> None:
        await self._run()

    async def options(self) -> None:
        await self._run()

    def _bearer_token(self) -> str | None:
        # The hot path: most API calls carry no token, so look before parsing.
        # (HTTPHeaders.get raises and catches KeyError for a missing header.)
        values = self.request.headers.get_list("Authorization")
        if values:
            scheme, _, value = ",".join(values).partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
        if "token" not in self.request.query_arguments:
            return None
        token = self.get_query_argument("token", None)
        return token or None

    def build_request(self, user: dict[str, Any] | None) -> dict[str, Any]:
        """The JSON fields of the handler's ``req``; the engine adds ``body`` and ``json``."""
        headers: dict[str, str] = {}
        for name, value in self.request.headers.get_all():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        query = {
            name: values[0].decode("utf-8", errors="replace")
            for name, values in self.request.query_arguments.items()
            if values
        }
        return {
            "method": self.request.method,
            "path": unquote("/api/" + self._name),
            "query": query,
            "headers": headers,
            "user": user,
            "app": {"slug": self.app.slug, "uuid": self.app.uuid},
        }

    async def _run(self) -> None:
        handler_file = _memo.handler_file(self.app.root, self._name)
        if handler_file is None:
            self.send_json_error(404, f"no handler for /api/{unquote(self._name)}")
            return
        user: dict[str, Any] | None = None
        token = self._bearer_token()
        if token is not None:
            try:
                user = self._endpoint.tokens.verify(token, self.app)
            except TokenError as error:
                self.send_json_error(401, f"invalid token: {error}")
                return
        body = b"".join(self._chunks)
        self._chunks.clear()
        try:
            response = await self._endpoint.engine.run_handler(
                HostCallContext(app=self.app),
                handler_file,
                _api_root(self.app.root),
                self.build_request(user),
                body,
            )
        except Exception:
            log.exception("app %s: /api/%s failed in the JS bridge", self.app.slug, self._name)
            self.send_json_error(500, "internal server error")
            return
        # The engine's response is final (status, headers and body checked there).
        try:
            self.set_status(response.status)
            for name, value in response.headers.items():
                self.set_header(name, value)
        except ValueError:
            log.error(
                "app %s: /api/%s: the JS engine returned a response HTTP cannot carry",
                self.app.slug,
                self._name,
            )
            self.send_json_error(500, "internal server error")
            return
        if self.request.method == "HEAD" or not response.body:
            # HTTP forbids a body for HEAD (and the engine sends none for 204 and 304).
            self.finish()
        else:
            self.finish(response.body)
