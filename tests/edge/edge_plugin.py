"""A test plugin for edge tests (also loadable in a ``fazt serve`` subprocess by import path).

``"plugins": ["tests.edge.edge_plugin:EdgeTestPlugin"]`` adds two routes to every app:

- ``/_slow``: answers 400 after half a second (so a request that asks to
  upgrade stays unanswered, hence pending, for that long);
- ``/_raise``: raises a Python exception (Tornado answers 500 and logs the
  request with its traceback).
"""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.web

from fazt.kernel.plugin import Plugin, PluginRoute

SLOW_SECONDS = 0.5


class _SlowHandler(tornado.web.RequestHandler):
    def initialize(self, **_kwargs: Any) -> None:
        pass

    async def get(self) -> None:
        await asyncio.sleep(SLOW_SECONDS)
        self.set_status(400)
        self.finish("no upgrade here")


class _RaisingHandler(tornado.web.RequestHandler):
    def initialize(self, **_kwargs: Any) -> None:
        pass

    def get(self) -> None:
        raise RuntimeError("this route always fails")


class EdgeTestPlugin(Plugin):
    name = "edgetest"

    def routes(self) -> list[PluginRoute]:
        return [
            PluginRoute("/_slow", _SlowHandler, {}),
            PluginRoute("/_raise", _RaisingHandler, {}),
        ]
