"""Recent operational events (limit crossings, kicks) for the admin dashboard.

A bounded list: the newest ``MAX_EVENTS`` are kept and older ones dropped, so
a storm of kicks costs a fixed amount of memory. Events are recorded where
they happen, on the IOLoop; each is small and JSON-ready. Unlike the
counters, they are recorded whether or not the admin listener runs: they are
rare, and the dashboard shows the recent past as soon as it is opened.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MAX_EVENTS: Final = 200

LIMIT_WARNING: Final = "limit.warning"
LIMIT_REJECTION: Final = "limit.rejection"
KICK: Final = "kick"


@dataclass(frozen=True)
class OpsEvent:
    """One event: ``kind`` (``limit.warning``, ``limit.rejection``, ``kick``), when
    (milliseconds since the epoch), the app's uuid (None: kernel-wide), a sentence,
    and details."""

    kind: str
    time_ms: int
    app_uuid: str | None
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)


class RecentEvents:
    """The newest events, at most ``size``."""

    def __init__(self, size: int = MAX_EVENTS) -> None:
        self._events: deque[OpsEvent] = deque(maxlen=size)

    def record(
        self,
        kind: str,
        app_uuid: str | None,
        message: str,
        data: Mapping[str, Any] | None = None,
        *,
        time_ms: int | None = None,
    ) -> None:
        now = time_ms if time_ms is not None else int(time.time() * 1000)
        self._events.append(OpsEvent(kind, now, app_uuid, message, dict(data or {})))

    def recent(self, limit: int = MAX_EVENTS) -> list[OpsEvent]:
        """The newest ``limit`` events, newest first."""
        events = list(self._events)
        events.reverse()
        return events[: max(0, limit)]


#: The process's recent events.
EVENTS: Final = RecentEvents()
