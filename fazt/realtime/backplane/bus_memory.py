"""The in-memory bus: the default for one process, and a cluster simulator for tests.

``MemoryBus()`` alone is a single node: its ``publish_*`` calls cost one dict
lookup and deliver nothing (there is nobody else), and a kick to itself is
delivered to itself.

Several ``MemoryBus``es sharing one ``MemoryBroker`` behave like the nodes of
a cluster inside one process and one IOLoop: messages cross between them and a
``crash()``ed node neither sends nor receives any more (``kill -9``).

Delivery to other nodes is scheduled with ``call_soon`` rather than made inline,
as it would arrive from a socket: a hub never re-enters itself through
``publish_channel``, and messages from one publisher keep their order. A
numbered publication (``publish_publication``) is scheduled the same way on
every subscribed node, the publisher included: the loop runs callbacks in the
order they were scheduled, so every node gets a channel's publications in
offset order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from fazt.realtime.backplane.bus import Bus, BusHandler
from fazt.realtime.backplane.callbacks import run_callback
from fazt.realtime.backplane.history import StreamPosition
from fazt.realtime.backplane.key_safety import check_app_uuid, check_node_id, new_node_id


class MemoryBroker:
    """The shared routes of an in-process cluster's bus: who receives which topic."""

    def __init__(self) -> None:
        self._nodes: dict[str, MemoryBus] = {}
        #: app -> channel -> ids of the nodes subscribed to it
        self._channel_nodes: dict[str, dict[str, set[str]]] = {}
        #: app -> ids of the nodes watching it
        self._app_nodes: dict[str, set[str]] = {}

    def attach(self, node: MemoryBus) -> None:
        if node.node_id in self._nodes and self._nodes[node.node_id] is not node:
            raise ValueError(f"node id {node.node_id!r} is already used on this broker")
        self._nodes[node.node_id] = node

    def detach(self, node_id: str) -> None:
        """Forget a node and every topic it received."""
        self._nodes.pop(node_id, None)
        for app_uuid in list(self._channel_nodes):
            for channel in list(self._channel_nodes[app_uuid]):
                self.unsubscribe_channel(node_id, app_uuid, channel)
        for app_uuid in list(self._app_nodes):
            self.unwatch_app(node_id, app_uuid)

    def subscribe_channel(self, node_id: str, app_uuid: str, channel: str) -> None:
        self._channel_nodes.setdefault(app_uuid, {}).setdefault(channel, set()).add(node_id)

    def unsubscribe_channel(self, node_id: str, app_uuid: str, channel: str) -> None:
        channels = self._channel_nodes.get(app_uuid)
        if channels is None or channel not in channels:
            return
        channels[channel].discard(node_id)
        if not channels[channel]:
            del channels[channel]
        if not channels:
            del self._channel_nodes[app_uuid]

    def watch_app(self, node_id: str, app_uuid: str) -> None:
        self._app_nodes.setdefault(app_uuid, set()).add(node_id)

    def unwatch_app(self, node_id: str, app_uuid: str) -> None:
        nodes = self._app_nodes.get(app_uuid)
        if nodes is not None:
            nodes.discard(node_id)
            if not nodes:
                del self._app_nodes[app_uuid]

    def channel_receivers(
        self, sender: str, app_uuid: str, channel: str, *, include_sender: bool = False
    ) -> list[MemoryBus]:
        node_ids = self._channel_nodes.get(app_uuid, {}).get(channel, ())
        return self._live_others("" if include_sender else sender, node_ids)

    def app_receivers(self, sender: str, app_uuid: str) -> list[MemoryBus]:
        return self._live_others(sender, self._app_nodes.get(app_uuid, ()))

    def kick_receiver(self, app_uuid: str, node_id: str) -> MemoryBus | None:
        """The live node ``node_id`` when it watches ``app_uuid`` (as a Redis node subscribes
        its kick topic of an app only while it watches the app)."""
        node = self._nodes.get(node_id)
        if node is None or node.crashed or node_id not in self._app_nodes.get(app_uuid, ()):
            return None
        return node

    def _live_others(self, sender: str, node_ids: Collection[str]) -> list[MemoryBus]:
        found = []
        for node_id in node_ids:
            node = self._nodes.get(node_id)
            if node_id != sender and node is not None and not node.crashed:
                found.append(node)
        return found


class MemoryBus(Bus):
    """One node on a ``MemoryBroker``; with no broker, a single node on its own."""

    def __init__(self, broker: MemoryBroker | None = None, node_id: str | None = None) -> None:
        self.node_id = check_node_id(node_id) if node_id is not None else new_node_id()
        self._broker = broker if broker is not None else MemoryBroker()
        self._handler: BusHandler | None = None
        self._started = False
        #: True after ``crash()``: the node neither sends nor receives any more.
        self.crashed = False

    async def start(self, handler: BusHandler) -> None:
        if self._started:
            raise RuntimeError("bus already started")
        self._broker.attach(self)
        self._handler = handler
        self._started = True

    async def stop(self) -> None:
        if self._started and not self.crashed:
            self._broker.detach(self.node_id)
        self._started = False
        self._handler = None

    def crash(self) -> None:
        """Simulate ``kill -9``: stop sending and receiving, leave the routes behind. For tests."""
        self.crashed = True

    def _call(self, action: Callable[[BusHandler], None]) -> None:
        handler = self._handler
        if handler is not None and not self.crashed:
            run_callback(lambda: action(handler), node_id=self.node_id)

    def _deliver_soon(self, action: Callable[[BusHandler], None]) -> None:
        asyncio.get_running_loop().call_soon(self._call, action)

    async def subscribe_channel(self, app_uuid: str, channel: str) -> None:
        self._broker.subscribe_channel(self.node_id, check_app_uuid(app_uuid), channel)

    async def unsubscribe_channel(self, app_uuid: str, channel: str) -> None:
        self._broker.unsubscribe_channel(self.node_id, check_app_uuid(app_uuid), channel)

    async def watch_app(self, app_uuid: str) -> None:
        self._broker.watch_app(self.node_id, check_app_uuid(app_uuid))

    async def unwatch_app(self, app_uuid: str) -> None:
        self._broker.unwatch_app(self.node_id, check_app_uuid(app_uuid))

    async def publish_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        check_app_uuid(app_uuid)
        if self.crashed:
            return
        for node in self._broker.channel_receivers(self.node_id, app_uuid, channel):
            node._deliver_soon(lambda h: h.deliver_channel(app_uuid, channel, payload))

    async def publish_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None = None,
    ) -> None:
        check_app_uuid(app_uuid)
        if self.crashed:
            return
        receivers = self._broker.channel_receivers(
            self.node_id, app_uuid, channel, include_sender=True
        )
        for node in receivers:
            node._deliver_soon(
                lambda h: h.deliver_publication(app_uuid, channel, payload, position, exclude)
            )

    async def publish_app(self, app_uuid: str, payload: bytes) -> None:
        check_app_uuid(app_uuid)
        if self.crashed:
            return
        for node in self._broker.app_receivers(self.node_id, app_uuid):
            node._deliver_soon(lambda h: h.deliver_app(app_uuid, payload))

    async def send_kick(self, app_uuid: str, node_id: str, client_id: str, reason: str) -> bool:
        if self.crashed:
            return False
        node = self._broker.kick_receiver(check_app_uuid(app_uuid), node_id)
        if node is None:
            return False
        node._deliver_soon(lambda h: h.kick_local(app_uuid, client_id, reason))
        return True
