"""The backplane interface: a message bus between nodes plus a cluster-wide registry.

A *node* is one kernel process. Each node's hub keeps its own local state (its
connections and their subscriptions) and does its own local fan-out. The
backplane adds what one node cannot know alone:

* the **bus** carries channel messages, app-wide messages and kicks to the other
  nodes. ``publish_*`` never delivers back to the publishing node: the hub
  delivers locally first, then publishes (as python-socketio does). A node only
  receives channels it asked for with ``subscribe_channel`` (called when its
  first local subscriber arrives), never a pattern that delivers everything;
* the **registry** gives cluster-wide answers: connection counts (for limits),
  subscriber lists and counts, channel counts, and presence deduplicated per
  user across every node and tab.

Payloads on the bus are the UTF-8 JSON text of the server message exactly as
clients receive it; a receiving node frames those bytes once and fans them out.

Every app-scoped call takes ``app_uuid`` and must keep apps apart in every key
and topic it uses. A node that dies without ``stop()`` must disappear from the
registry within a bounded time (``presence TTL``); the backplane then reports
each presence member that left through ``BackplaneHandler.presence_expired``
on exactly one surviving node.

Implementations must pass ``tests/realtime/backplane/conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol


class BackplaneHandler(Protocol):
    """What a backplane calls back into: the local hub. Calls happen on the IOLoop."""

    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        """Another node published ``payload`` on ``channel``: fan it out locally."""

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        """Another node sent ``payload`` to every client of the app (``broadcastAll``)."""

    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None:
        """Kick ``client_id``, which this node holds, on behalf of another node."""

    def presence_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        """``member`` left ``channel`` because the node holding its last connection died.

        Called on one surviving node only; the hub announces the leave (locally
        and through ``publish_channel``).
        """


class Backplane(ABC):
    """A node's connection to the other nodes. All methods run on the IOLoop."""

    #: This node's id, unique in the cluster.
    node_id: str

    # -- life cycle ---------------------------------------------------------
    @abstractmethod
    async def start(self, handler: BackplaneHandler) -> None:
        """Connect, start listening and start refreshing this node's liveness."""

    @abstractmethod
    async def stop(self) -> None:
        """Remove this node's registry entries and disconnect (graceful shutdown)."""

    # -- bus ----------------------------------------------------------------
    @abstractmethod
    async def subscribe_channel(self, app_uuid: str, channel: str) -> None:
        """Start receiving ``channel`` (this node got its first local subscriber)."""

    @abstractmethod
    async def unsubscribe_channel(self, app_uuid: str, channel: str) -> None:
        """Stop receiving ``channel`` (its last local subscriber left)."""

    @abstractmethod
    async def watch_app(self, app_uuid: str) -> None:
        """Start receiving app-wide messages and kicks for ``app_uuid`` (first local client)."""

    @abstractmethod
    async def unwatch_app(self, app_uuid: str) -> None:
        """Stop receiving app-wide messages for ``app_uuid`` (last local client left)."""

    @abstractmethod
    async def publish_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        """Deliver ``payload`` to every *other* node subscribed to ``channel``."""

    @abstractmethod
    async def publish_app(self, app_uuid: str, payload: bytes) -> None:
        """Deliver ``payload`` to every *other* node that watches ``app_uuid``."""

    @abstractmethod
    async def send_kick(self, app_uuid: str, client_id: str, reason: str) -> bool:
        """Ask the node holding ``client_id`` to kick it; False when no live node has it."""

    # -- registry: connections and subscriptions ------------------------------
    @abstractmethod
    async def add_connection(self, app_uuid: str, client_id: str) -> None:
        """Record a new connection of this node."""

    @abstractmethod
    async def remove_connection(self, app_uuid: str, client_id: str) -> None:
        """Forget a connection of this node (and nothing else: subscriptions are removed
        one by one by the hub)."""

    @abstractmethod
    async def count_connections(self, app_uuid: str | None = None) -> int:
        """Live connections of one app, or of every app with ``None``, cluster-wide."""

    @abstractmethod
    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> None:
        """Record that ``client_id`` subscribed; ``info`` is its public subscriber entry
        ``{"clientId", "connectedAt", "metadata"}`` returned by ``subscribers``."""

    @abstractmethod
    async def remove_subscription(self, app_uuid: str, channel: str, client_id: str) -> None:
        """Forget one subscription."""

    @abstractmethod
    async def subscribers(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        """Every live subscriber's ``info`` for the channel, cluster-wide."""

    @abstractmethod
    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        """Number of live subscriptions to the channel, cluster-wide."""

    @abstractmethod
    async def count_channels(self, app_uuid: str) -> int:
        """Number of the app's channels that have at least one live subscriber."""

    # -- registry: presence -----------------------------------------------------
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
        """Remove one connection; True when it was the user's last one in the cluster."""

    @abstractmethod
    async def presence_members(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        """One entry per present user, cluster-wide, in join order where known."""
