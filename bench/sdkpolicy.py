"""The browser SDK's reconnect policy, in Python, for the storm's clients.

A port of ``sdk/src/policy.js`` (``backoff``, ``closePolicy``) and the
constants ``sdk/src/client.js`` uses, so that the bench's clients come back
after a restart exactly as browsers would. ``tests/bench`` checks it against
the JavaScript with the same random numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BACKOFF_MIN_MS = 500  # policy.js: options.min default
BACKOFF_MAX_MS = 20000  # policy.js: options.max default
CONNECT_TIMEOUT_S = 10.0  # client.js: connectTimeout default (ms 10000)
NOW, SLOW, RETRY, STOP = "now", "slow", "retry", "stop"


def backoff_ms(attempt: int, rand: Callable[[], float] = random.random) -> int:
    """Delay in ms before reconnect attempt ``attempt`` (0 for the first one).

    Full jitter: uniform in [min, min + min(max, min * 2^attempt)], clamped to max.
    """
    cap = min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** min(max(attempt, 0), 31))
    return min(BACKOFF_MAX_MS, int(BACKOFF_MIN_MS + rand() * cap))


def close_policy(code: int) -> str:
    """The reconnect class of a close code: 4000-4099 stop, 4100-4199 back off more,
    4200-4299 reconnect now, everything else back off."""
    if 4000 <= code < 4100:
        return STOP
    if 4100 <= code < 4200:
        return SLOW
    if 4200 <= code < 4300:
        return NOW
    return RETRY


def reconnect_delay_ms(policy: str, attempt: int, rand: Callable[[], float] = random.random) -> int:
    """What ``client.js`` ``_lost`` waits: no delay for the first "now" attempt,
    two more doublings for "slow", else ``backoff_ms(attempt)``."""
    if policy == NOW and attempt == 0:
        return 0
    return backoff_ms(attempt + 2 if policy == SLOW else attempt, rand)
