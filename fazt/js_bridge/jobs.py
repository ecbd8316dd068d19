"""One request on its way through the engine: what to run, for whom, and where the answer goes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fazt.contracts.host_calls import Effect, HostCallContext
from fazt.contracts.js_engine import JsResponse

#: Wakes a loop that sleeps with answers waiting for it (see ``handoff.LoopLink.post``).
Waker = Callable[[], None]


class Poster(Protocol):
    """Posts a finished response back to the job's IOLoop (``handoff.LoopLink.post``)."""

    def __call__(
        self,
        future: asyncio.Future[JsResponse],
        response: JsResponse,
        *,
        defer_wake: bool = False,
        effects: Sequence[Effect] = (),
    ) -> Waker | None:
        """With ``defer_wake``, a wake-up the loop needs is returned instead of done.
        ``effects`` (of posted host calls) run on the loop before ``future`` resolves."""
        ...


@dataclass(frozen=True)
class ExportCall:
    """Run a named export of the module instead of a handler: ``name`` is called with
    the job's ``request`` as its one argument; with ``name`` None the job lists the
    module's exported functions instead."""

    name: str | None


@dataclass(eq=False)
class Job:
    """A handler run requested by the IOLoop, executed by a worker thread.

    With ``export`` set it is an export call (``JsEngine.call_export``):
    ``handler_file`` is the module, ``request`` the argument, and the response
    carries the returned value (see ``execution``).

    ``deadline`` (``time.monotonic()``) is when the request's wall-clock time is
    up, counted from when the engine received it. ``abandoned`` is set on the
    loop when nobody waits for the answer any more (the caller was cancelled,
    or the deadline passed first): a worker skips such a job if it has not
    started it. ``started`` is set by the scheduler, under its lock, when a
    worker takes the job.
    """

    context: HostCallContext
    handler_file: Path
    api_root: Path
    request: Mapping[str, Any]
    body: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[JsResponse]
    post: Poster
    #: Runs a callback on the job's loop, from the worker (``handoff.LoopLink.run_on_loop``).
    run_on_loop: Callable[[Callable[[], object]], None]
    #: Called on the loop when the job's host calls are done, with what lets the
    #: worker go on (``handoff.LoopLink.wait_for_worker``).
    wait_for_worker: Callable[[Callable[[], None]], None]
    deadline: float
    abandoned: bool = field(default=False)
    started: bool = field(default=False)
    # Set when handed to the workers (see ModuleStore.closure); None: always stat.
    batch: int | None = field(default=None)
    export: ExportCall | None = field(default=None)
    #: This job's own wall-clock limit (``deadline`` is counted with it); None: the sandbox's.
    wall_limit_seconds: float | None = field(default=None)
    #: Effects of host calls settled on the worker, not yet handed to the loop (worker
    #: thread only; ``take_effects``).
    effects: list[Effect] = field(default_factory=list)

    def take_effects(self) -> list[Effect]:
        """On the worker: the effects posted so far, in call order; the list starts over."""
        effects, self.effects = self.effects, []
        return effects

    @property
    def app_key(self) -> str:
        """The app the job counts against for fairness and caps: its uuid."""
        return self.context.app.uuid


def deliver(future: asyncio.Future[JsResponse], response: JsResponse) -> None:
    """Resolve ``future`` with ``response`` unless it is already done (on its loop)."""
    if not future.done():
        future.set_result(response)
