"""Start a coroutine at once, on the caller's stack, and make a task of it only if it waits.

``loop.create_task`` always defers the first step to the next loop turn, and
the task's done callback to the turn after: two turns and a task for a
coroutine that often finishes without ever waiting (a host call such as a
broadcast in memory). Python 3.12 calls the remedy *eager tasks*; this is the
same for the one place that needs it, on every Python the project supports.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


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
