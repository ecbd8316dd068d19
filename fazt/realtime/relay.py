"""What the backplane calls back into: messages, kicks and expired presence from other nodes."""

from __future__ import annotations

from typing import Any

from fazt.realtime import protocol
from fazt.realtime.backplane.history import StreamPosition
from fazt.realtime.hooks import Hooks
from fazt.realtime.hub import Hub
from fazt.realtime.membership import Membership
from fazt.realtime.tasks import Tasks


class BackplaneRelay:
    """Implements ``BusHandler`` and ``RegistryHandler`` for this node's hub.

    Every call comes from the backplane on the IOLoop and must not block:
    messages are fanned out at once, announcements run as background tasks.
    """

    def __init__(self, hub: Hub, membership: Membership, tasks: Tasks, hooks: Hooks) -> None:
        self._hub = hub
        self._membership = membership
        self._tasks = tasks
        self._hooks = hooks

    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        self._hub.deliver_channel(app_uuid, channel, payload)

    def deliver_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None,
    ) -> None:
        self._hub.deliver_publication(app_uuid, channel, payload, position, exclude)

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        self._hub.deliver_app(app_uuid, payload)

    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None:
        self._hub.kick(app_uuid, client_id, str(reason)[: protocol.MAX_KICK_REASON])

    def presence_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        # Announced even when this node has no client of the app (a worker that
        # just replaced the dead one often wins the sweep): the other nodes'
        # subscribers must still hear the leave.
        self._tasks.spawn(self._membership.left(app_uuid, channel, member))

    def channel_vacated(self, app_uuid: str, channel: str) -> None:
        # Only the app's onVacated hook cares: no client was told the channel existed.
        self._hooks.channel_vacated(app_uuid, channel)
