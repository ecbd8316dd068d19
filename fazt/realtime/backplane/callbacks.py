"""How every backplane calls back into its node: a failing callback is logged, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("fazt.realtime.backplane")


def run_callback(action: Callable[[], None], *, node_id: str) -> None:
    """Run one handler callback (a delivery, a kick, a presence report) for ``node_id``.

    An exception is the hub's bug, not the backplane's: it is logged and the
    backplane goes on delivering.
    """
    try:
        action()
    except Exception:
        log.exception("backplane handler failed on node %s", node_id)
