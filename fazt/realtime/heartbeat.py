"""One shared timer that sweeps every connection: pings, pong and idle timeouts, token expiry.

Thousands of connections cost one ``PeriodicCallback``, not thousands of
timers or tasks. Each deadline fires within one sweep period.
"""

from __future__ import annotations

import tornado.ioloop

from fazt.realtime.hub import Hub

MIN_PERIOD_SECONDS = 0.05
MAX_PERIOD_SECONDS = 1.0


def sweep_period(ping_interval: float, pong_timeout: float, idle_timeout: float) -> float:
    """A quarter of the smallest interval, clamped to [50 ms, 1 s]."""
    smallest = min(ping_interval, pong_timeout, idle_timeout)
    return max(MIN_PERIOD_SECONDS, min(MAX_PERIOD_SECONDS, smallest / 4))


class SharedHeartbeat:
    """Runs ``hub.sweep()`` every ``period`` seconds on the current IOLoop."""

    def __init__(self, hub: Hub, period: float) -> None:
        self._callback = tornado.ioloop.PeriodicCallback(hub.sweep, period * 1000)

    def start(self) -> None:
        self._callback.start()

    def stop(self) -> None:
        self._callback.stop()
