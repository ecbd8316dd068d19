"""A call at the end of each IOLoop turn, just before the loop waits for I/O.

asyncio has no public hook for "the loop is about to block", yet that is the
moment for the JS bridge to hand its batch to the workers and to look for their
answers: then the loop sleeps in ``select`` (without the GIL) while a worker
runs, instead of both fighting over the GIL, and an answer that arrives while
the loop is busy is picked up at the turn's end without a self-pipe write.

The hook wraps the ``select`` of the loop's selector (``SelectorEventLoop``,
the loop Tornado runs on). A loop without one (uvloop, the proactor loop) gets
no hook, and :func:`install_turn_hook` says so; the caller then falls back to
``call_soon`` and ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol


class TurnHook(Protocol):
    """What runs around each wait of the loop for I/O, on the loop's thread."""

    def before_wait(self, timeout: float | None) -> float | None:
        """The loop is about to wait ``timeout`` seconds (None: until an event);
        returns the timeout to wait instead (0 when it scheduled callbacks)."""
        ...

    def after_wait(self) -> None:
        """The wait is over; the loop runs the callbacks of this turn next."""
        ...


log = logging.getLogger("fazt.js_bridge")

#: The attribute of a wrapped ``select`` that holds its hooks (so a second hook joins them).
_HOOKS_ATTRIBUTE = "fazt_turn_hooks"


def install_turn_hook(loop: asyncio.AbstractEventLoop, hook: TurnHook) -> bool:
    """Call ``hook`` on ``loop``'s thread before each wait for I/O; False if impossible.

    Call on the loop's thread. Hooks run in the order installed; each sees the
    timeout the previous one returned. They live as long as the loop's selector
    (nothing global refers to them, so a finished loop is freed with its hooks).
    """
    selector: Any = getattr(loop, "_selector", None)
    select = getattr(selector, "select", None)
    if select is None or not callable(select):
        return False
    hooks: list[TurnHook] | None = getattr(select, _HOOKS_ATTRIBUTE, None)
    if hooks is None:
        hooks = []
        hook_list = hooks

        def select_after_hooks(timeout: float | None = None) -> Any:
            for each in hook_list:
                try:
                    timeout = each.before_wait(timeout)
                except Exception:  # a bug in a hook must not stop the loop
                    log.exception("a loop turn hook failed")
                    timeout = 0
            try:
                return select(timeout)
            finally:
                for each in hook_list:
                    try:
                        each.after_wait()
                    except Exception:
                        log.exception("a loop turn hook failed")

        setattr(select_after_hooks, _HOOKS_ATTRIBUTE, hooks)
        selector.select = select_after_hooks
    hooks.append(hook)
    return True


def installed_hooks(loop: asyncio.AbstractEventLoop) -> list[TurnHook]:
    """The hooks installed on ``loop``, in order (empty without any)."""
    select = getattr(getattr(loop, "_selector", None), "select", None)
    return list(getattr(select, _HOOKS_ATTRIBUTE, None) or [])
