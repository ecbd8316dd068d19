"""Owner notifications: the hook plugins use to say "an app crossed a threshold".

A plugin calls ``kernel.notifications.notify(Notification(...))``; every
subscriber (tests, a future e-mail plugin) receives it synchronously, in
subscription order, and the kernel always logs it at WARNING. A subscriber that
raises is logged and skipped, so one bad subscriber never hides the event from
the others or breaks the plugin that notified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("fazt.notifications")

Subscriber = Callable[["Notification"], None]


@dataclass(frozen=True)
class Notification:
    """Something the owner of an app (or of the server) should hear about.

    ``kind`` is a short machine name such as ``"realtime.limit.warning"``;
    ``message`` is the human sentence; ``data`` carries details (numbers, names).
    """

    kind: str
    message: str
    app_uuid: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class Notifications:
    """Fan-out of notifications to subscribers, plus a WARNING log line each."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it (idempotent)."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def notify(self, notification: Notification) -> None:
        """Log ``notification`` at WARNING and hand it to every subscriber."""
        log.warning(
            "notification %s%s: %s",
            notification.kind,
            f" app={notification.app_uuid}" if notification.app_uuid else "",
            notification.message,
        )
        for callback in list(self._subscribers):
            try:
                callback(notification)
            except Exception:
                log.exception("notification subscriber %r failed", callback)
