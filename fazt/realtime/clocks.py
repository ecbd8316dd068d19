"""The three clocks of the realtime core, injected so tests can move time by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def wall_ms() -> int:
    """Milliseconds since the epoch: message timestamps and ``connectedAt``."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Clocks:
    """``monotonic`` runs every deadline (seconds); ``wall_ms`` stamps messages;
    ``token_time`` is the clock token ``exp`` claims are read against (seconds)."""

    monotonic: Callable[[], float] = field(default=time.monotonic)
    wall_ms: Callable[[], int] = field(default=wall_ms)
    token_time: Callable[[], float] = field(default=time.time)

    def token_deadline(self, exp: object) -> float | None:
        """A token's ``exp`` claim on the monotonic clock, or None without one."""
        if not isinstance(exp, int | float):
            return None
        return self.monotonic() + (float(exp) - self.token_time())
