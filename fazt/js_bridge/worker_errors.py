"""Exceptions caught on a worker thread, reduced to text before anything keeps them.

A traceback's frames reference the worker's QuickJS contexts. An exception
object kept past its ``except`` block (in a log record, in a cycle left to the
cyclic GC) can free a context later on another thread, which the ``quickjs``
wrapper does not survive. So worker code logs tracebacks as text and clears the
frames of what it caught.
"""

from __future__ import annotations

import traceback


def traceback_text() -> str:
    """The exception being handled, as text (for a log record)."""
    return traceback.format_exc().rstrip()


def forget_frames(error: BaseException) -> None:
    """Drop the frames ``error`` and its causes hold, here on the worker thread."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__
