"""The host-call contract: how JS handlers call Python through ``fazt.<ns>.<fn>(...)``.

A *host function* is ``async def fn(context, args) -> value``. It runs on the
IOLoop that serves the request. ``context`` names the calling app (always
exactly one); ``args`` are the JS arguments, already JSON-decoded (dict, list,
str, int, float, bool or None). It returns a JSON-serialisable value, which
resolves the JS Promise, or raises :class:`HostCallError`, whose message
rejects it. Any other exception rejects with ``fazt.<ns>.<fn>: internal error``
and is logged.

A host function that needs a service (the token service, the realtime hub)
closes over it when its namespace is built; the context carries only the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fazt.contracts.app import App

#: Names the JS bridge itself defines on ``fazt`` (``fazt.app``, ``fazt.log``).
BRIDGE_NAMESPACES = frozenset({"app", "log"})
#: The namespace the kernel provides (``fazt.auth``).
AUTH_NAMESPACE = "auth"
#: Names no plugin may take: they are the bridge's or the kernel's.
RESERVED_NAMESPACES = BRIDGE_NAMESPACES | {AUTH_NAMESPACE}


class HostCallError(Exception):
    """Raised by a host function to reject the JS Promise with this message.

    The message should name the function and the argument, e.g.
    ``"fazt.realtime.broadcast: channel must be a string"``.
    """


@dataclass(frozen=True)
class HostCallContext:
    """What a host function knows about its caller: always exactly one app."""

    app: App


#: ``async (context, args) -> JSON-serialisable value``; see the module docstring.
HostFunction = Callable[[HostCallContext, list[Any]], Awaitable[Any]]
