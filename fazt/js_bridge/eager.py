"""Start a coroutine at once, on the caller's stack, and make a task of it only if it waits.

``loop.create_task`` always defers the first step to the next loop turn, and
the task's done callback to the turn after: two turns and a task for a
coroutine that often finishes without ever waiting (a host call such as a
broadcast in memory). Python 3.12 calls the remedy *eager tasks*; this is the
same for the one place that needs it, on every Python the project supports.

The effects of host calls settled on a worker (``run_effects``) start the same
way when the loop takes them.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator, Iterable
from typing import Any, TypeVar

from fazt.contracts.host_calls import Effect

T = TypeVar("T")

log = logging.getLogger("fazt.js_bridge")


def start_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]
) -> T | asyncio.Task[T]:
    """Run ``coro`` up to its first wait: its result if it finished, else its task.

    An exception the coroutine raises before waiting propagates to the caller.
    From its first wait on, the task drives it exactly as if ``create_task``
    had started it (cancelling the task throws into the coroutine).
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    return loop.create_task(_go_on(coro, waiting_on))


async def _go_on(coro: Coroutine[Any, Any, T], waiting_on: Any) -> T:
    result: T = await _delegate(coro, waiting_on)
    return result


@types.coroutine
def _delegate(coro: Coroutine[Any, Any, T], waiting_on: Any) -> Generator[Any, Any, T]:
    """``yield from coro``, for a coroutine already started that yielded ``waiting_on``."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as thrown:  # the task's cancellation, or a future's error
            try:
                waiting_on = coro.throw(thrown)
            except StopIteration as finished:
                result: T = finished.value
                return result
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as finished:
                result = finished.value
                return result


def run_effects(loop: asyncio.AbstractEventLoop, effects: Iterable[Effect]) -> None:
    """On the loop: run the effects of posted host calls, in order, each up to its first
    wait (one that waits goes on as a task). A failing effect is logged; the others
    still run: the JS caller was told its call was accepted."""
    for effect in effects:
        try:
            started = effect()
            if started is None:
                continue
            outcome = start_eagerly(loop, started)
        except Exception:
            log.exception("the effect of a posted host call failed")
            continue
        if isinstance(outcome, asyncio.Task):
            outcome.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the effect of a posted host call failed", exc_info=task.exception())
