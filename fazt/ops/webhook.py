"""An example notification plugin: forwards the kernel's notifications to a webhook URL.

Enable it in the kernel config::

    {"plugins": ["realtime", "webhook"],
     "webhook": {"url": "https://hooks.example/fazt", "kinds": ["realtime.limit.warning"]}}

Each notification (``kernel.notifications``: the realtime plugin's 80 %
warnings and 100 % rejections) becomes one ``POST`` of JSON to ``url``::

    {"kind": "realtime.limit.warning", "message": "...", "appUuid": "app_...",
     "data": {"limit": "maxConnectionsPerApp", "used": 400, "max": 500}, "time": 1764...}

``kinds`` keeps only those kinds (default: all). Posting never blocks the
code that notified: each POST runs in the background with a timeout
(``timeoutSeconds``, default 5), at most ``maxPending`` (default 100) at once;
one over that is dropped and counted in the next warning line. A failed POST
is logged at WARNING and not retried. At stop the plugin waits for the POSTs
still running, up to their timeout.

It shows the hook's whole contract: subscribe in ``start``, never raise or
block in the callback, unsubscribe in ``stop``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import tornado.httpclient

from fazt.kernel.notifications import Notification
from fazt.kernel.plugin import Plugin, PluginHost

log = logging.getLogger("fazt.ops.webhook")

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_PENDING = 100


class WebhookPlugin(Plugin):
    """POSTs every notification (or the listed ``kinds``) to ``url`` as JSON."""

    name = "webhook"

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self.kinds: frozenset[str] | None = None
        self.timeout_seconds = DEFAULT_TIMEOUT_SECONDS
        self.max_pending = DEFAULT_MAX_PENDING
        self._pending: set[asyncio.Task[None]] = set()
        self._dropped = 0
        self._client: tornado.httpclient.AsyncHTTPClient | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "pattern": "^https?://[^\\s]+$"},
                "kinds": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                "maxPending": {"type": "integer", "minimum": 1, "maximum": 10_000},
            },
        }

    def configure(self, settings: Mapping[str, Any]) -> None:
        self.url = settings.get("url", self.url)
        kinds = settings.get("kinds")
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.timeout_seconds = float(settings.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        self.max_pending = int(settings.get("maxPending", DEFAULT_MAX_PENDING))

    async def start(self, kernel: PluginHost) -> None:
        if not self.url:
            raise ValueError('the webhook plugin needs a URL: "webhook": {"url": "https://..."}')
        self._client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        self._unsubscribe = kernel.notifications.subscribe(self._on_notification)

    def _on_notification(self, notification: Notification) -> None:
        if self.kinds is not None and notification.kind not in self.kinds:
            return
        if len(self._pending) >= self.max_pending:
            self._dropped += 1
            return
        task = asyncio.ensure_future(self._post(notification))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, notification: Notification) -> None:
        client, url = self._client, self.url
        if client is None or url is None:
            return
        body = {
            "kind": notification.kind,
            "message": notification.message,
            "appUuid": notification.app_uuid,
            "data": dict(notification.data),
            "time": int(time.time() * 1000),
        }
        try:
            await client.fetch(
                url,
                method="POST",
                body=json.dumps(body, default=str),
                headers={"Content-Type": "application/json"},
                request_timeout=self.timeout_seconds,
                connect_timeout=self.timeout_seconds,
            )
        except Exception as error:
            dropped, self._dropped = self._dropped, 0
            extra = f" ({dropped} more dropped: too many pending)" if dropped else ""
            log.warning("webhook %s: POST of %s failed: %s%s", url, notification.kind, error, extra)

    async def stop(self, kernel: PluginHost) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        try:
            if self._pending:
                await asyncio.wait(tuple(self._pending), timeout=self.timeout_seconds + 1)
        finally:
            for task in tuple(self._pending):
                task.cancel()
            if self._client is not None:
                self._client.close()
                self._client = None
