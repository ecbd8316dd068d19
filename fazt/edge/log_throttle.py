"""At most one log line per interval for an event that can repeat without end."""

from __future__ import annotations

import math


class LogThrottle:
    """Lets one line through per ``interval_seconds`` and counts the events held back.

    Pure: the caller passes the time. ``event(now=...)`` records one event and
    returns the number of events held back since the last line when a line may
    be written now, else ``None``.
    """

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._next_line_at = -math.inf
        self._held_back = 0

    def event(self, *, now: float) -> int | None:
        if now >= self._next_line_at:
            held_back = self._held_back
            self._held_back = 0
            self._next_line_at = now + self.interval_seconds
            return held_back
        self._held_back += 1
        return None
