"""Hand-offs that do not preempt the thread that made them: Linux's ``SCHED_BATCH``.

A hand-off between the IOLoop and a worker wakes the other thread while the
waker still holds the GIL (a lock's release is a Python call). Linux runs a
woken thread at once when it can (wake-up preemption): the woken thread then
finds the GIL taken, sleeps again, and the waker runs on until it lets the GIL
go. That is two context switches more per hand-off, and on a busy core they
are most of what a host call costs: measured in process on one core, an
``async`` handler awaiting one host call switched threads 11 times per request.

A thread under ``SCHED_BATCH`` is never woken ahead of the thread running: it
waits until that one blocks or its time slice ends, which for a waker about to
wait is at once, and then takes the GIL without a fight. So the JS workers run
under it for good (they are background computation; they are still scheduled
fairly by their nice value), and the IOLoop thread only while it waits for a
worker's answer (``handoff.LoopLink``): when it sleeps for I/O it stays under
the normal policy, so a packet still wakes it at once.

Where the policy cannot be set (not Linux, or a seccomp profile that forbids
it), nothing changes; the same where the thread runs under another policy than
the normal one (an operator's choice, kept).
"""

from __future__ import annotations

import os
import threading
from typing import Final

_BATCH: Final = getattr(os, "SCHED_BATCH", None)
_NORMAL: Final = getattr(os, "SCHED_OTHER", None)


#: The one parameter the normal and batch policies take (made once: a call is hot).
_PARAM: Final = os.sched_param(0) if hasattr(os, "sched_param") else None


def _set(policy: int | None) -> bool:
    """Put the calling thread under ``policy``; False where that cannot be done."""
    if policy is None or _PARAM is None:
        return False
    try:
        os.sched_setscheduler(0, policy, _PARAM)
    except (OSError, AttributeError):
        return False
    return True


def _runs_normal() -> bool:
    if _BATCH is None or _NORMAL is None:
        return False
    try:
        return bool(os.sched_getscheduler(0) == _NORMAL)
    except (OSError, AttributeError):
        return False


def run_as_batch() -> bool:
    """Put the calling thread under ``SCHED_BATCH`` if it runs under the normal policy;
    returns whether it did."""
    return _runs_normal() and _set(_BATCH)


class BatchWhileWaiting:
    """For one thread (the IOLoop's): ``SCHED_BATCH`` while it waits for a worker.

    Asks the thread's policy once, in the thread that first waits; a thread
    under another policy than the normal one is left alone, and so is one
    whose policy cannot be set. The two policy changes per wait cost a few
    microseconds, so they are made only around a wait that blocks.
    """

    def __init__(self) -> None:
        self._usable: bool | None = None

    def acquire(self, lock: threading.Lock, timeout: float) -> bool:
        """``lock.acquire(timeout=timeout)``, under ``SCHED_BATCH`` meanwhile."""
        if self._usable is None:
            self._usable = _runs_normal()  # False too where either policy is missing
        if not self._usable:
            return lock.acquire(timeout=timeout)
        if not _set(_BATCH):
            self._usable = False
            return lock.acquire(timeout=timeout)
        try:
            return lock.acquire(timeout=timeout)
        finally:
            _set(_NORMAL)
