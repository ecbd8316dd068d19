"""Releasing what a connection holds, unconditionally, and logging its failures once.

A connection holds a registration, subscriptions, presence entries and counts,
here and in the backplane registry. Releasing them is a chain of steps, any
of which may raise (a backplane call, an encoding error, a bug): ``run_every``
runs every step whatever the ones before it did, then raises the first error,
so one failed step never skips the next.

An internal error while serving a connection is logged once for that
connection (``note_failure``): a client that triggers the same failure with
every message it sends costs one log record, not one per message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from fazt.realtime.session import Session

log = logging.getLogger("fazt.realtime")

#: One step of a release: called, then awaited.
Step = Callable[[], Awaitable[None]]


async def run_every(steps: Iterable[Step]) -> None:
    """Await every step in order, even after one raised; then raise the first error."""
    first: Exception | None = None
    for step in steps:
        try:
            await step()
        except Exception as error:
            if first is None:
                first = error
    if first is not None:
        raise first


def note_failure(session: Session, doing: str) -> None:
    """Count an internal error of ``session``; log it (with its traceback) the first time.

    Call it from an ``except`` block: the record carries the exception being handled.
    """
    session.failures += 1
    if session.failures == 1:
        log.exception(
            "realtime: internal error while %s (app %s, client %s); "
            "later errors of this connection are not logged",
            doing,
            session.app_uuid,
            session.client_id,
        )
