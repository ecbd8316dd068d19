"""The QuickJS bridge: runs apps' ``api/*.js`` handlers in a sandbox, off the IOLoop.

See ``docs/js-handlers.md`` for the handler model and the sandbox's limits.
"""

from fazt.contracts.js_engine import JsResponse
from fazt.js_bridge.engine import JsEngine

__all__ = ["JsEngine", "JsResponse"]
