"""The QuickJS bridge: runs apps' ``api/*.js`` handlers in a sandbox, off the IOLoop.

See ``docs/js-handlers.md`` for the handler model and the sandbox's limits.
"""

from fazt.js_bridge.engine import JsEngine
from fazt.js_bridge.response import JsResponse

__all__ = ["JsEngine", "JsResponse"]
