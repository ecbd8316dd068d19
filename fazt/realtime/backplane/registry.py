"""The registry interface: cluster-wide connections, subscriptions and presence, with liveness.

Each node's hub knows its own connections; the registry answers what one node
cannot know alone: connection counts (for limits), which node holds a client
(for kicks), subscriber lists and counts, channel counts, and presence
deduplicated per user across every node and tab.

Liveness. Every entry belongs to the node that wrote it. A node refreshes its
liveness while it runs; a node that dies without ``stop()`` disappears from
the registry within a bounded time (the presence TTL): a surviving node
*sweeps* it, removing its entries, and the registry reports each presence
member that left through ``RegistryHandler.presence_expired``, and each
channel left without subscribers through ``RegistryHandler.channel_vacated``,
on exactly one surviving node.

Occupancy. ``add_subscription`` and ``remove_subscription`` say, atomically
across the cluster, whether they gave a channel its first subscriber or took
its last one, so exactly one node decides each change. A node may *hold* the
vacancy of a channel it emptied (``hold_vacancy=True``) for a while: a
subscriber that comes back meanwhile cancels it (that add reports no first
subscriber), and ``settle_vacancy`` later tells the holder whether the
channel stayed empty. A vacancy held by a node that dies is settled by the
sweep (``channel_vacated`` when the channel is still empty).

Every call takes ``app_uuid`` and keeps apps apart in every key it uses; an
unsafe app uuid raises ``ValueError`` (``key_safety``), and so does a presence
member that is not an object with a string ``id``.

Implementations must pass ``tests/realtime/backplane/registry_conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol


class RegistryHandler(Protocol):
    """What a registry calls back into. Calls happen on the IOLoop."""

    def presence_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        """``member`` left ``channel`` because the node holding its last connection died.

        Called on one surviving node only; that node announces the leave.
        """

    def channel_vacated(self, app_uuid: str, channel: str) -> None:
        """``channel`` has no subscriber left in the cluster because the node holding
        its last subscriptions (or a vacancy it held) died.

        Called on one surviving node only, after that node's ``presence_expired``
        reports of the same sweep.
        """


class Registry(ABC):
    """A node's view of the cluster-wide registry. All methods run on the IOLoop."""

    #: This node's id, unique in the cluster (the bus uses the same one).
    node_id: str

    # -- life cycle ---------------------------------------------------------
    @abstractmethod
    async def start(self, handler: RegistryHandler) -> None:
        """Register this node and start refreshing its liveness; raises
        ``ConnectionError`` when the medium is unreachable."""

    @abstractmethod
    async def stop(self) -> None:
        """Remove this node's entries (graceful shutdown) and disconnect."""

    # -- connections ----------------------------------------------------------
    @abstractmethod
    async def add_connection(self, app_uuid: str, client_id: str) -> None:
        """Record a new connection of this node."""

    @abstractmethod
    async def remove_connection(self, app_uuid: str, client_id: str) -> None:
        """Forget a connection of this node (and nothing else: subscriptions are removed
        one by one)."""

    @abstractmethod
    async def count_connections(self, app_uuid: str | None = None) -> int:
        """Live connections of one app, or of every app with ``None``, cluster-wide."""

    @abstractmethod
    async def connection_node(self, app_uuid: str, client_id: str) -> str | None:
        """The id of the live node holding ``client_id`` of this app, or None."""

    # -- subscriptions --------------------------------------------------------
    @abstractmethod
    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> bool:
        """Record that ``client_id`` subscribed; ``info`` is its public subscriber entry
        ``{"clientId", "connectedAt", "metadata"}`` returned by ``subscribers``.

        Returns True when this gave the channel its first subscriber anywhere in
        the cluster (it is now *occupied*), atomically: of two nodes adding at
        once, one sees True. A held vacancy of the channel is cancelled instead
        (False: the channel never counted as vacated).
        """

    @abstractmethod
    async def remove_subscription(
        self, app_uuid: str, channel: str, client_id: str, *, hold_vacancy: bool = False
    ) -> bool:
        """Forget one subscription; True when it was the channel's last one in the
        cluster (it is now *vacated*), atomically.

        With ``hold_vacancy`` such a vacancy is held by this node until
        ``settle_vacancy`` (or until another node's subscribe cancels it).
        """

    @abstractmethod
    async def settle_vacancy(self, app_uuid: str, channel: str) -> bool:
        """End this node's held vacancy of the channel: True when the node still held
        it and the channel is still without subscribers (announce it vacated now),
        False when a subscriber came back meanwhile or another node holds it."""

    @abstractmethod
    async def subscribers(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        """Every live subscriber's ``info`` for the channel, cluster-wide (fresh copies)."""

    @abstractmethod
    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        """Number of live subscriptions to the channel, cluster-wide."""

    @abstractmethod
    async def count_channels(self, app_uuid: str) -> int:
        """Number of the app's channels that have at least one live subscriber."""

    # -- presence ---------------------------------------------------------------
    @abstractmethod
    async def presence_join(
        self, app_uuid: str, channel: str, client_id: str, member: dict[str, Any]
    ) -> bool:
        """Add one connection of ``member`` (``member["id"]`` is the user id).

        Returns True when this is the user's first connection on the channel
        anywhere in the cluster, i.e. when a ``join`` must be announced.
        """

    @abstractmethod
    async def presence_leave(
        self, app_uuid: str, channel: str, client_id: str, user_id: str
    ) -> bool:
        """Remove one connection; True when it was the user's last one in the cluster.

        The user recorded at join is authoritative: ``user_id`` cannot make
        another user leave.
        """

    @abstractmethod
    async def presence_members(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        """One entry per present user, cluster-wide, in join order."""
