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

A *postable* host function (:class:`PostableHostFunction`) can also be settled
on the worker thread that runs the JS, with no round trip to the IOLoop: its
``post(context, args)`` checks the arguments there and returns a
:class:`Posted`, whose ``result`` resolves the Promise at once and whose
``effect`` the IOLoop runs later, in call order: before the job's next host
calls, or with its response (before the response is written). ``post`` must
only read what does not change while the server runs (rules, limits) and
return None when it cannot settle the call there (the call then runs on the
IOLoop as usual). A fire-and-forget write (``fazt.realtime.broadcast`` on a
channel without history) is the use: its Promise means "accepted", and the
hand-off to the IOLoop and back, the dearest step of a host call, is saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
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

#: What a posted call leaves for the IOLoop to do: a call that returns a coroutine for
#: the loop to run (or None when it did everything itself).
Effect = Callable[[], Coroutine[Any, Any, Any] | None]


@dataclass(frozen=True)
class Posted:
    """A host call settled on the worker: its ``result`` now, its ``effect`` later on
    the IOLoop (see the module docstring)."""

    result: Any
    effect: Effect


class PostableHostFunction:
    """A host function that may be settled on the worker (see the module docstring).

    Called, it is the plain ``run`` host function; ``post`` is tried first on the
    worker and may raise :class:`HostCallError` (the Promise rejects at once).
    """

    __slots__ = ("post", "run")

    def __init__(
        self,
        run: HostFunction,
        post: Callable[[HostCallContext, list[Any]], Posted | None],
    ) -> None:
        self.run = run
        self.post = post

    def __call__(self, context: HostCallContext, args: list[Any]) -> Awaitable[Any]:
        return self.run(context, args)
