"""The realtime limits: names, defaults, per-app lowering and 80 % warnings.

Kernel config ``"realtime": {"limits": {...}}`` sets them for the kernel; an
app's ``app.json`` ``"limits": {"realtime": {...}}`` may lower any of them,
never raise it (a higher value is silently capped to the kernel's).

Capacity limits (connections total / per app, channels per app) warn at 80 %:
once per crossing, i.e. again only after usage fell back under 80 % and rose
again. The warning is logged and handed to a notifier (the kernel's
notification hook). At 100 % the next connection gets HTTP 503 and the next
channel ``channel_limit``. ``maxChannelsCreatedPerClient`` bounds how many of
the app's channels one connection may hold open by being their first
subscriber, so a few anonymous connections cannot use up
``maxChannelsPerApp``; an unsubscribe gives the budget back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

WARNING_RATIO: Final = 0.8


@dataclass(frozen=True, slots=True)
class Limits:
    """Field names are the config keys (camelCase, as in the design)."""

    maxConnectionsTotal: int = 5000
    maxConnectionsPerApp: int = 500
    maxChannelsPerApp: int = 100
    #: New channels one connection may hold: its subscriptions that created their channel.
    maxChannelsCreatedPerClient: int = 10
    maxSubscriptionsPerClient: int = 20
    maxMessageSizeKB: int = 64
    maxMessagesPerSecond: int = 100
    idleTimeoutSeconds: int = 300

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> Limits:
        """Kernel limits from a (schema-validated) config section; unknown keys ignored."""
        return cls().lowered_by(values, allow_raise=True)

    def lowered_by(self, values: Mapping[str, Any] | None, *, allow_raise: bool = False) -> Limits:
        """These limits with ``values`` applied; without ``allow_raise`` a value can only
        lower a limit (the app-level rule)."""
        changes: dict[str, int] = {}
        for item in fields(self):
            value = (values or {}).get(item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                continue
            current = getattr(self, item.name)
            changes[item.name] = int(value) if allow_raise else min(int(value), current)
        return replace(self, **changes)

    @property
    def max_message_bytes(self) -> int:
        return self.maxMessageSizeKB * 1024


LIMIT_NAMES: Final = tuple(item.name for item in fields(Limits))


def limits_schema() -> dict[str, Any]:
    """JSON Schema of a ``limits`` object (kernel config and ``app.json``)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {"type": "integer", "minimum": 1, "default": getattr(Limits(), name)}
            for name in LIMIT_NAMES
        },
    }


#: ``notify(limit_name, message, app_uuid, data)``: where 80 % warnings go.
Notifier = Callable[[str, str, "str | None", dict[str, Any]], None]


class ThresholdWatcher:
    """Fires ``notify`` once each time a usage crosses 80 % of its limit upwards."""

    def __init__(self, notify: Notifier) -> None:
        self._notify = notify
        self._above: set[tuple[str, str | None]] = set()

    def observe(self, name: str, used: int, limit: int, app_uuid: str | None = None) -> None:
        key = (name, app_uuid)
        if used >= WARNING_RATIO * limit:
            if key not in self._above:
                self._above.add(key)
                where = f" for app {app_uuid}" if app_uuid else ""
                message = f"realtime {name}{where} at {used}/{limit} (80% warning)"
                # The notifier logs (the kernel's hook logs every notification).
                self._notify(name, message, app_uuid, {"used": used, "limit": limit})
        else:
            self._above.discard(key)
