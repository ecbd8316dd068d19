"""The realtime limits: names, defaults, per-app lowering and 80 % warnings.

Kernel config ``"realtime": {"limits": {...}}`` sets them for the kernel; an
app's ``app.json`` ``"limits": {"realtime": {...}}`` may lower any of them,
never raise it (a higher value is silently capped to the kernel's).

Every usage limit warns at 80 % and refuses at 100 %: the capacity limits
(connections total / per app, channels per app) and the per-client ones
(subscriptions per client, channels created per client, message rate, message
size). At 100 % the next
connection gets HTTP 503, the next channel ``channel_limit``, the next
subscription ``subscription_limit``, a message over the rate ``rate_limited``
and a message over the size close 1009.

``ThresholdWatcher`` turns usages into *crossings*: a warning once when a usage
rises to 80 %, a rejection once when something is first refused; both are
armed again only after the usage fell back under 80 %. So a client hammering a
full limit yields one rejection, not one per message. Each crossing goes to
the notifier (the realtime plugin logs it once and hands it to the kernel's
notification hook) and to the recent events of the dashboard; the metrics
count every warning crossing and every single refusal.

``maxChannelsCreatedPerClient`` bounds how many of the app's channels one
connection may hold open by being their first subscriber, so a few anonymous
connections cannot use up ``maxChannelsPerApp``; an unsubscribe gives the
budget back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from fazt.metrics.events import EVENTS, LIMIT_REJECTION, LIMIT_WARNING
from fazt.metrics.realtime import REALTIME

WARNING_RATIO: Final = 0.8
#: ``data["event"]`` of a notification: which crossing it reports.
WARNING: Final = "warning"
REJECTION: Final = "rejection"


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


#: ``notify(limit_name, message, app_uuid, data)``: where crossings go. ``data`` holds
#: ``event`` (``warning`` or ``rejection``), ``used`` and ``limit``, and ``clientId``
#: for a per-client limit.
Notifier = Callable[[str, str, "str | None", dict[str, Any]], None]

_Flag = tuple[str, "str | None", str]


class ThresholdWatcher:
    """Turns usages and refusals into crossings (see the module docstring).

    Capacity limits are watched per app (``app_uuid``, None for kernel-wide);
    per-client limits per connection too (``client_id``), whose state the
    caller drops with ``forget_client`` when the connection closes.
    """

    def __init__(self, notify: Notifier) -> None:
        self._notify = notify
        self._flags: set[_Flag] = set()
        self._client_flags: dict[str, set[_Flag]] = {}

    def observe(
        self,
        name: str,
        used: int,
        limit: int,
        app_uuid: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """A usage now: warns when it rose to 80 %, re-arms both crossings under 80 %."""
        if used >= WARNING_RATIO * limit:
            flags = self._flags_of(client_id)
            flag = (name, app_uuid, WARNING)
            if flag not in flags:
                flags.add(flag)
                REALTIME.limit_warning(app_uuid, name)
                self._crossed(WARNING, name, used, limit, app_uuid, client_id)
            return
        flags_now = self._flags if client_id is None else self._client_flags.get(client_id)
        if flags_now:
            flags_now.discard((name, app_uuid, WARNING))
            flags_now.discard((name, app_uuid, REJECTION))

    def refused(
        self,
        name: str,
        used: int,
        limit: int,
        app_uuid: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """Something was refused at the limit: counted always, reported once per crossing."""
        REALTIME.limit_rejection(app_uuid, name)
        flags = self._flags_of(client_id)
        flag = (name, app_uuid, REJECTION)
        if flag not in flags:
            flags.add(flag)
            self._crossed(REJECTION, name, used, limit, app_uuid, client_id)

    def forget_client(self, client_id: str) -> None:
        """The connection closed: drop its per-client crossings."""
        self._client_flags.pop(client_id, None)

    def _flags_of(self, client_id: str | None) -> set[_Flag]:
        if client_id is None:
            return self._flags
        flags = self._client_flags.get(client_id)
        if flags is None:
            flags = self._client_flags[client_id] = set()
        return flags

    def _crossed(
        self,
        event: str,
        name: str,
        used: int,
        limit: int,
        app_uuid: str | None,
        client_id: str | None,
    ) -> None:
        where = f" for app {app_uuid}" if app_uuid else ""
        if client_id is not None:
            where += f" client {client_id}"
        if event == WARNING:
            message = f"realtime {name}{where} at {used}/{limit} (80% warning)"
        else:
            message = f"realtime {name}{where} reached its limit of {limit}: refused"
        data: dict[str, Any] = {"event": event, "used": used, "limit": limit}
        if client_id is not None:
            data["clientId"] = client_id
        kind = LIMIT_WARNING if event == WARNING else LIMIT_REJECTION
        details = {"limit": name, "used": used, "max": limit}
        if client_id is not None:
            details["clientId"] = client_id
        EVENTS.record(kind, app_uuid, message, details)
        # The notifier logs (the kernel's hook logs every notification).
        self._notify(name, message, app_uuid, data)
