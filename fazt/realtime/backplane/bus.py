"""The bus interface: messages between the nodes of a cluster.

A *node* is one kernel process. Each node's hub fans out to its own local
subscribers; the bus carries what the other nodes must fan out too:

* **channel topics**: messages published on a channel of an app. A node
  receives a channel only after ``subscribe_channel`` (called when its first
  local subscriber arrives), never through a pattern that delivers everything;
* **app topics**: app-wide messages (``broadcastAll``), received by the nodes
  that ``watch_app`` (they hold at least one client of the app);
* **node topics**: kicks addressed to one node (``send_kick``), received by
  that node for every app it watches.

``publish_channel`` and ``publish_app`` never deliver back to the publishing
node: the hub delivers locally first, then publishes (as python-socketio
does). ``publish_publication`` carries a numbered publication of a history
channel (``history.HistoryStore.publish`` calls it) to every node subscribed
to the channel, **the publishing node included**, so every node receives a
channel's publications in one order, the order of their offsets. Payloads are
the UTF-8 JSON text of the server message exactly as clients receive it; a
receiving node frames those bytes once and fans them out. Messages from one
node on one topic arrive in the order they were published (the order of the
``publish_*`` calls), whatever the kind of message.

``subscribe_channel`` returns once the node really receives the channel: a
message published anywhere after it returned reaches this node.

Every call takes ``app_uuid`` and keeps apps apart in every topic it uses; an
unsafe app uuid raises ``ValueError`` (``key_safety``). A node that crashed
receives nothing more.

Implementations must pass ``tests/realtime/backplane/bus_conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from fazt.realtime.backplane.history import StreamPosition


class BusHandler(Protocol):
    """What a bus calls back into (the node's receiving side). Calls happen on the IOLoop;
    an exception raised here is logged by the bus and never stops delivery."""

    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        """Another node published ``payload`` on ``channel``: fan it out locally."""

    def deliver_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None,
    ) -> None:
        """A numbered publication on ``channel`` (from any node, this one included):
        fan it out locally, but not to the client ``exclude``."""

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        """Another node sent ``payload`` to every client of the app (``broadcastAll``)."""

    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None:
        """Kick ``client_id``, which this node holds, on behalf of some node."""


class Bus(ABC):
    """A node's side of the message bus. All methods run on the IOLoop."""

    #: This node's id, unique in the cluster (the registry uses the same one).
    node_id: str

    @abstractmethod
    async def start(self, handler: BusHandler) -> None:
        """Connect and start receiving; raises ``ConnectionError`` when the medium is
        unreachable (a node never starts half-joined)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and disconnect (graceful shutdown)."""

    @abstractmethod
    async def subscribe_channel(self, app_uuid: str, channel: str) -> None:
        """Start receiving ``channel`` (this node got its first local subscriber).

        Returns once the channel is received (on Redis: once SUBSCRIBE is
        confirmed), also when another call for the channel is still waiting for
        that. Calling it again for a received channel changes nothing.
        """

    @abstractmethod
    async def unsubscribe_channel(self, app_uuid: str, channel: str) -> None:
        """Stop receiving ``channel`` (its last local subscriber left)."""

    @abstractmethod
    async def watch_app(self, app_uuid: str) -> None:
        """Start receiving app-wide messages and kicks for ``app_uuid`` (first local client)."""

    @abstractmethod
    async def unwatch_app(self, app_uuid: str) -> None:
        """Stop receiving app-wide messages and kicks for ``app_uuid`` (last client left)."""

    @abstractmethod
    async def publish_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        """Deliver ``payload`` to every *other* node subscribed to ``channel``."""

    @abstractmethod
    async def publish_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None = None,
    ) -> None:
        """Deliver a numbered publication to every node subscribed to ``channel``, this
        one included (``BusHandler.deliver_publication``), in the order of the calls."""

    @abstractmethod
    async def publish_app(self, app_uuid: str, payload: bytes) -> None:
        """Deliver ``payload`` to every *other* node that watches ``app_uuid``."""

    @abstractmethod
    async def send_kick(self, app_uuid: str, node_id: str, client_id: str, reason: str) -> bool:
        """Ask node ``node_id`` (this node included) to kick ``client_id``.

        True when a live node watching ``app_uuid`` received the request; the
        registry says which node holds a client (``Registry.connection_node``).
        """
