"""Running a coroutine inside a callback: step it now, finish it in a Task only if it waits.

With the in-memory backplane most of fazt's coroutines (a command, opening a
connection) never wait on I/O. Stepping one with ``send(None)`` runs it to the
end right away, without the Task, the ``call_soon`` and the extra loop turn
that ``create_task`` costs; only one that really suspends gets a Task for the
rest (``resume``), which waits on the very Future it yielded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


def run_inline(
    coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop
) -> asyncio.Task[None] | None:
    """Run ``coroutine`` now up to its first wait: None when it finished, else the Task
    that runs the rest. An exception of the first step is raised here."""
    try:
        yielded = coroutine.send(None)
    except StopIteration:
        return None
    return loop.create_task(resume(coroutine, yielded))


async def resume(coroutine: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Run the rest of a coroutine stepped by hand that suspended on ``yielded``."""
    while True:
        await _Wakeup(yielded)
        try:
            yielded = coroutine.send(None)
        except StopIteration:
            return


class _Wakeup:
    """Awaits what a manually stepped coroutine yielded, without consuming its result.

    A coroutine stepped with ``send(None)`` that suspends yields the Future it
    waits for (or None for a bare yield). Awaiting this from a Task makes the
    Task wait for that same Future; its result or exception is then read by
    the coroutine itself on the next ``send``. Only the Task's own cancellation
    is raised here (it also cancels the Future, which the coroutine then sees).
    """

    __slots__ = ("_future",)

    def __init__(self, future: Any) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, None]:
        future = self._future
        try:
            yield future
        except BaseException:
            if future is None or not future.done():
                raise
