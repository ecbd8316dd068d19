"""The Tornado timer that runs the realtime scan (``lifecycle.Scanner.scan``).

Thousands of connections cost one ``PeriodicCallback``, not thousands of
timers or tasks. Each deadline fires within one scan period.
"""

from __future__ import annotations

from collections.abc import Callable

import tornado.ioloop


class ScanTimer:
    """Runs ``scan()`` every ``period`` seconds on the current IOLoop."""

    def __init__(self, scan: Callable[[], None], period: float) -> None:
        self._callback = tornado.ioloop.PeriodicCallback(scan, period * 1000)

    def start(self) -> None:
        self._callback.start()

    def stop(self) -> None:
        self._callback.stop()
