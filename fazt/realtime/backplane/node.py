"""One node's backplane: its bus, registry and history store, sharing one node id.

``memory_backplane()`` is the default (one process; or several in-process nodes
on one ``MemoryNetwork`` in tests); ``redis_backplane(url)`` joins processes and
machines through Redis, with the three parts sharing one ``RedisLink``. The
history store publishes through its node's bus (in memory, through
``MemoryBus.publish_publication``; on Redis, from its own Lua script on the
bus's topics).
"""

from __future__ import annotations

from dataclasses import dataclass

from fazt.realtime.backplane.bus import Bus, BusHandler
from fazt.realtime.backplane.bus_memory import MemoryBroker, MemoryBus
from fazt.realtime.backplane.history import HistoryStore
from fazt.realtime.backplane.history_memory import MemoryHistoryData, MemoryHistoryStore
from fazt.realtime.backplane.key_safety import check_node_id, new_node_id
from fazt.realtime.backplane.registry import Registry, RegistryHandler
from fazt.realtime.backplane.registry_memory import (
    DEFAULT_PRESENCE_TTL_SECONDS,
    MemoryRegistry,
    MemoryRegistryStore,
)


@dataclass(frozen=True)
class Backplane:
    """A node's bus, registry and history store. All carry the same ``node_id``: the
    registry names the node that holds a client, and the bus delivers kicks to
    that node."""

    bus: Bus
    registry: Registry
    history: HistoryStore

    def __post_init__(self) -> None:
        if not self.bus.node_id == self.registry.node_id == self.history.node_id:
            raise ValueError(
                "the bus, the registry and the history store of a node must share its node id"
            )

    @property
    def node_id(self) -> str:
        return self.bus.node_id

    @property
    def runs_inline(self) -> bool:
        """True when a command that uses this backplane may start inside the read
        callback, outside any Task (``connection``): its calls either never wait, or
        move the command into a Task themselves before they need one.

        The in-memory backplane never waits on anything. On Redis, publishes are
        queued on the ordered lane without waiting (``RedisBus``), so a client's
        publish runs to its end inline; a call that does wait on Redis yields once
        first (``RedisLink.call``), so the rest of its command runs in a Task, as
        redis-py's timeouts require."""
        from fazt.realtime.backplane.bus_redis import RedisBus
        from fazt.realtime.backplane.history_redis import RedisHistoryStore
        from fazt.realtime.backplane.registry_redis import RedisRegistry

        parts = (self.bus, self.registry, self.history)
        return all(map(isinstance, parts, (MemoryBus, MemoryRegistry, MemoryHistoryStore))) or all(
            map(isinstance, parts, (RedisBus, RedisRegistry, RedisHistoryStore))
        )

    async def start(self, bus_handler: BusHandler, registry_handler: RegistryHandler) -> None:
        """Join the registry, then the bus, then open the history store; a failure leaves
        none of them started."""
        await self.registry.start(registry_handler)
        try:
            await self.bus.start(bus_handler)
            try:
                await self.history.start()
            except BaseException:
                await self.bus.stop()
                raise
        except BaseException:
            await self.registry.stop()
            raise

    async def stop(self) -> None:
        """Close the history store, leave the bus, then the registry (which removes this
        node's entries)."""
        try:
            await self.history.stop()
        finally:
            try:
                await self.bus.stop()
            finally:
                await self.registry.stop()


class MemoryNetwork:
    """The shared medium of an in-process cluster: a bus broker, a registry store and
    the history streams."""

    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self.store = MemoryRegistryStore()
        self.history = MemoryHistoryData()


def memory_backplane(
    network: MemoryNetwork | None = None,
    node_id: str | None = None,
    *,
    presence_ttl_seconds: float = DEFAULT_PRESENCE_TTL_SECONDS,
) -> Backplane:
    """An in-memory node: alone (the default), or one node of ``network``."""
    node = check_node_id(node_id) if node_id is not None else new_node_id()
    if network is None:
        bus = MemoryBus(node_id=node)
        return Backplane(
            bus,
            MemoryRegistry(node_id=node, presence_ttl_seconds=presence_ttl_seconds),
            MemoryHistoryStore(bus),
        )
    bus = MemoryBus(network.broker, node)
    return Backplane(
        bus,
        MemoryRegistry(network.store, node, presence_ttl_seconds=presence_ttl_seconds),
        MemoryHistoryStore(bus, network.history),
    )


def redis_backplane(
    url: str,
    *,
    node_id: str | None = None,
    presence_ttl_seconds: float = DEFAULT_PRESENCE_TTL_SECONDS,
    prefix: str = "fazt",
    reconnect_max_seconds: float = 5.0,
    socket_timeout_seconds: float = 2.0,
    max_connections: int = 32,
) -> Backplane:
    """A node of the cluster joined through the Redis server at ``url``.

    ``prefix`` starts every key and topic, so several clusters can share one
    Redis; the other arguments are ``RedisLink``'s and ``RedisRegistry``'s.
    Raises ``ValueError`` for bad arguments and ``RuntimeError`` (with the
    install hint) when redis-py is missing; ``start`` raises ``ConnectionError``
    when Redis cannot be reached.
    """
    from fazt.realtime.backplane.bus_redis import RedisBus
    from fazt.realtime.backplane.history_redis import RedisHistoryStore
    from fazt.realtime.backplane.redis_link import RedisLink
    from fazt.realtime.backplane.registry_redis import RedisRegistry, check_prefix

    node = check_node_id(node_id) if node_id is not None else new_node_id()
    check_prefix(prefix)
    link = RedisLink(
        url,
        node_id=node,
        reconnect_max_seconds=reconnect_max_seconds,
        socket_timeout_seconds=socket_timeout_seconds,
        max_connections=max_connections,
    )
    registry = RedisRegistry(
        link, node_id=node, prefix=prefix, presence_ttl_seconds=presence_ttl_seconds
    )
    return Backplane(
        RedisBus(link, node_id=node, prefix=prefix),
        registry,
        RedisHistoryStore(link, node_id=node, prefix=prefix),
    )
