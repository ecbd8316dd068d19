"""A paced sender: ``count`` sends at ``rate`` per second from ``start``, on any loop.

Each send gets its scheduled time, so a late sender counts as latency (no
coordinated omission). Between sends the loop sleeps at least one timer tick:
uvloop's timers count whole milliseconds and fire a shorter sleep at once, so a
sender that slept "until the next one is due" spun at any rate above 1,000/s
and took its core whole (the latency it measured was then the client's). After
each sleep, everything that fell due meanwhile goes out together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: The shortest sleep between sends: one tick of uvloop's millisecond timers.
MIN_SLEEP_SECONDS = 0.001


async def send_paced(
    count: int, rate: float, start: float, send: Callable[[int, float], None]
) -> int:
    """Call ``send(index, scheduled time)`` ``count`` times on the schedule; returns ``count``."""
    sent = 0
    while sent < count:
        now = time.monotonic()
        due = start + sent / rate
        if due > now:
            await asyncio.sleep(max(due - now, MIN_SLEEP_SECONDS))
            continue
        while sent < count and start + sent / rate <= now:
            send(sent, start + sent / rate)
            sent += 1
    return sent
