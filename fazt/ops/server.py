"""The admin listener: metrics, health, readiness, the admin API and the dashboard.

``fazt serve --admin-port P`` starts it on ``admin.address`` (127.0.0.1 by
default), never on the public port. Routes:

- ``GET /metrics``: Prometheus text, no token (meant for a scraper on a
  private network);
- ``GET /healthz``: 200 while the process serves;
- ``GET /readyz``: 200 ``{"ready": true}`` when it takes connections and the
  backplane is connected, else 503 ``{"ready": false, "reason": ...}``;
- ``/admin/...``: the admin API (JSON), every call with
  ``Authorization: Bearer <admin token>`` (401 without it or with a wrong one,
  compared in constant time);
- ``GET /admin/``: the dashboard page and its two assets (no token: the page
  asks for it and sends it with each API call).

Every error is JSON ``{"error": "..."}``: 400 for bad input, 401, 404 for an
unknown app or path, 405 for a wrong method. With ``--workers`` the worker
that answers gathers the per-process parts from the others (``workers``).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Final

import tornado.httpserver
import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fazt.contracts.strict_json import loads_without_constants
from fazt.metrics.events import EVENTS, OpsEvent
from fazt.metrics.exposition import enable_counting, metrics_registry
from fazt.ops.backend import MAX_CHANNEL_LIMIT, AdminError, RealtimeAdmin
from fazt.ops.exposition import merge_workers
from fazt.ops.workers import (
    METRICS,
    STATUS,
    Snapshot,
    SnapshotServer,
    WorkerGroup,
    gather_snapshots,
)

log = logging.getLogger("fazt.ops")
access_log = logging.getLogger("fazt.ops.access")

DASHBOARD_DIR: Final = Path(__file__).resolve().parent / "dashboard"
DASHBOARD_ASSETS: Final = {
    "dashboard.js": "application/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
#: Busiest channels per app in the dashboard's overview; recent events it shows.
OVERVIEW_CHANNELS: Final = 5
OVERVIEW_EVENTS: Final = 50
MAX_BODY_BYTES: Final = 1024 * 1024


class AdminServer:
    """The admin listener of one process (one worker with ``--workers``)."""

    def __init__(
        self, admin: RealtimeAdmin, token: str, workers: WorkerGroup | None = None
    ) -> None:
        if not token:
            raise ValueError("the admin token must not be empty")
        self.admin = admin
        self._token = token.encode()
        self.workers = workers
        self.registry = metrics_registry(admin)
        self._http: tornado.httpserver.HTTPServer | None = None
        self._snapshots = SnapshotServer(workers, self.snapshot) if workers else None

    # -- life cycle ------------------------------------------------------------------------
    async def start(self, sockets: list[socket.socket]) -> None:
        """Count from now on and serve on ``sockets`` (bound by the caller)."""
        enable_counting()
        if self._snapshots is not None:
            await self._snapshots.start()
        self._http = tornado.httpserver.HTTPServer(
            self.application(),
            max_body_size=MAX_BODY_BYTES,
            idle_connection_timeout=60,
            body_timeout=10,
        )
        self._http.add_sockets(sockets)

    def begin_shutdown(self) -> None:
        """The process is stopping: ``/readyz`` answers 503 from now on."""
        self.admin.shutting_down = True

    async def stop(self) -> None:
        """Stop listening (after the kernel stopped: readiness is served meanwhile)."""
        http, self._http = self._http, None
        if http is not None:
            http.stop()
            await http.close_all_connections()
        if self._snapshots is not None:
            await self._snapshots.stop()

    def application(self) -> tornado.web.Application:
        routes: list[Any] = [
            (r"/metrics", MetricsHandler, {"server": self}),
            (r"/healthz", HealthHandler, {"server": self}),
            (r"/readyz", ReadyHandler, {"server": self}),
            (r"/admin", tornado.web.RedirectHandler, {"url": "/admin/"}),
            (r"/admin/", DashboardHandler, {"server": self}),
            (r"/admin/assets/([a-z]+\.[a-z]+)", AssetHandler, {"server": self}),
            (r"/admin/overview", OverviewHandler, {"server": self}),
            (r"/admin/apps", AppsHandler, {"server": self}),
            (r"/admin/apps/([^/]+)/channels", ChannelsHandler, {"server": self}),
            (r"/admin/apps/([^/]+)/channels/([^/]+)", ChannelHandler, {"server": self}),
            (r"/admin/apps/([^/]+)/kick", KickHandler, {"server": self}),
            (r"/admin/apps/([^/]+)/broadcast", BroadcastHandler, {"server": self}),
        ]
        return tornado.web.Application(
            routes,
            default_handler_class=NotFoundHandler,
            default_handler_args={"server": self},
            log_function=_log_request,
        )

    # -- authentication ------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        """Is ``header`` ``Bearer <the admin token>``? Compared in constant time."""
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    # -- what this process is now ------------------------------------------------------------
    def snapshot(self, part: str = STATUS) -> Snapshot:
        """This process, as the other workers ask for it (``workers``)."""
        found: Snapshot = {
            "worker": self.workers.slot if self.workers else None,
            "pid": os.getpid(),
            "ready": self.admin.readiness(),
            "backplane": self.admin.backplane(),
            "totals": self.admin.totals(),
            "events": [_event_json(event) for event in EVENTS.recent(OVERVIEW_EVENTS)],
        }
        if part == METRICS:
            found["metrics"] = generate_latest(self.registry).decode()
        return found

    async def snapshots(self, part: str) -> list[Snapshot]:
        """Every worker's snapshot (this process alone without ``--workers``)."""
        own = self.snapshot(part)
        if self.workers is None:
            return [own]
        return await gather_snapshots(self.workers, own, part)

    async def metrics_text(self) -> bytes:
        if self.workers is None:
            return generate_latest(self.registry)
        found = await self.snapshots(METRICS)
        return merge_workers((str(s["worker"]), str(s.get("metrics", ""))) for s in found)

    async def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "reason"?, "workers"?}``: ready when every worker is."""
        found = await self.snapshots(STATUS)
        reasons = [str(s["ready"]) for s in found if s.get("ready") is not None]
        answer: dict[str, Any] = {"ready": not reasons}
        if reasons:
            answer["reason"] = reasons[0]
        if self.workers is not None:
            answer["workers"] = [
                {"worker": s["worker"], "pid": s["pid"], "ready": s.get("ready") is None}
                | ({"reason": s["ready"]} if s.get("ready") is not None else {})
                for s in found
            ]
        return answer

    async def overview(self) -> dict[str, Any]:
        """Everything the dashboard shows, in one answer."""
        found = await self.snapshots(STATUS)
        names = self.admin.app_names()
        apps = await self.admin.apps()
        for app in apps:
            app["busiest"] = await self.admin.channels(app["slug"], OVERVIEW_CHANNELS)
        events = sorted(
            (event for s in found for event in s.get("events", [])),
            key=lambda event: -int(event.get("time", 0)),
        )[:OVERVIEW_EVENTS]
        for event in events:
            event["app"] = names.get(str(event.pop("appUuid", None)))
        reasons = [str(s["ready"]) for s in found if s.get("ready") is not None]
        backplanes = [s["backplane"] for s in found]
        return {
            "time": int(time.time() * 1000),
            "ready": not reasons,
            "reason": reasons[0] if reasons else None,
            "workers": len(found),
            "backplane": {
                "kind": backplanes[0]["kind"],
                "up": all(b["up"] for b in backplanes),
                "dropped": sum(int(b["dropped"]) for b in backplanes),
            },
            "totals": {
                key: sum(int(s["totals"][key]) for s in found)
                for key in ("publications", "deliveries")
            },
            "apps": apps,
            "events": events,
        }


def _event_json(event: OpsEvent) -> dict[str, Any]:
    return {
        "time": event.time_ms,
        "kind": event.kind,
        "appUuid": event.app_uuid,
        "message": event.message,
        "data": dict(event.data),
    }


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Admin requests at DEBUG (scrapes would flood the log); failures at WARNING."""
    status = handler.get_status()
    level = logging.DEBUG if status < 500 else logging.WARNING
    if access_log.isEnabledFor(level):
        request = handler.request
        access_log.log(
            level,
            "%d %s %s (%s) %.2fms",
            status,
            request.method,
            request.path,
            request.remote_ip,
            1000.0 * request.request_time(),
        )


# -- handlers -----------------------------------------------------------------------------------
class _AdminHandler(tornado.web.RequestHandler):
    """JSON answers and JSON errors."""

    def initialize(self, server: AdminServer) -> None:
        self.listener = server

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        if not isinstance(value, AdminError):  # a refusal is an answer, not a failure
            super().log_exception(typ, value, tb)

    def send_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value, separators=(",", ":"), allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, AdminError):
            self.send_json({"error": error.message}, error.status)
            return
        reason = "internal error" if status_code == 500 else self._reason.lower()
        self.send_json({"error": reason}, status_code)


class NotFoundHandler(_AdminHandler):
    def prepare(self) -> None:
        # Under /admin/ the token comes first, as for every API call.
        if self.request.path.startswith("/admin/") and not self.listener.authorized(
            self.request.headers.get("Authorization")
        ):
            _unauthorized(self)
            return
        self.send_json({"error": f"no such admin path: {self.request.path}"}, 404)


def _unauthorized(handler: _AdminHandler) -> None:
    handler.set_header("WWW-Authenticate", 'Bearer realm="fazt admin"')
    handler.send_json(
        {"error": "missing or wrong admin token (Authorization: Bearer <token>)"}, 401
    )


class HealthHandler(_AdminHandler):
    def get(self) -> None:
        self.send_json({"ok": True})


class ReadyHandler(_AdminHandler):
    async def get(self) -> None:
        answer = await self.listener.readiness()
        self.send_json(answer, 200 if answer["ready"] else 503)


class MetricsHandler(_AdminHandler):
    async def get(self) -> None:
        body = await self.listener.metrics_text()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)


class DashboardHandler(_AdminHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        # The page loads only what fazt serves: nothing from another origin.
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
        )
        self.finish((DASHBOARD_DIR / "index.html").read_bytes())


class AssetHandler(_AdminHandler):
    def get(self, name: str) -> None:
        content_type = DASHBOARD_ASSETS.get(name)
        if content_type is None:
            self.send_json({"error": f"no such asset: {name}"}, 404)
            return
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        self.finish((DASHBOARD_DIR / name).read_bytes())


class _ApiHandler(_AdminHandler):
    """The admin API: bearer token first, then ``AdminError`` as a JSON error."""

    def prepare(self) -> None:
        if not self.listener.authorized(self.request.headers.get("Authorization")):
            _unauthorized(self)

    def json_body(self) -> Any:
        try:
            return loads_without_constants(self.request.body or b"null")
        except (ValueError, RecursionError) as error:
            raise AdminError(400, f"the request body is not valid JSON: {error}") from error


def _limit(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) > MAX_CHANNEL_LIMIT:
        raise AdminError(400, f"limit must be an integer from 0 to {MAX_CHANNEL_LIMIT}")
    return int(value)


class OverviewHandler(_ApiHandler):
    async def get(self) -> None:
        self.send_json(await self.listener.overview())


class AppsHandler(_ApiHandler):
    async def get(self) -> None:
        self.send_json(await self.listener.admin.apps())


class ChannelsHandler(_ApiHandler):
    async def get(self, slug: str) -> None:
        limit = _limit(self.get_query_argument("limit", None))
        self.send_json(await self.listener.admin.channels(slug, limit))


class ChannelHandler(_ApiHandler):
    async def get(self, slug: str, channel: str) -> None:
        self.send_json(await self.listener.admin.channel(slug, channel))


class KickHandler(_ApiHandler):
    async def post(self, slug: str) -> None:
        kicked = await self.listener.admin.kick(slug, self.json_body())
        self.send_json({"kicked": kicked})


class BroadcastHandler(_ApiHandler):
    async def post(self, slug: str) -> None:
        await self.listener.admin.broadcast(slug, self.json_body())
        self.send_json({"ok": True})
