"""The in-memory registry: the default for one process, and a cluster simulator for tests.

``MemoryRegistry()`` alone is a single node: a few dicts, so the answers are
exactly the local ones, and no timer runs.

Several ``MemoryRegistry``s sharing one ``MemoryRegistryStore`` behave like the
nodes of a cluster inside one process and one IOLoop: the registry is shared,
each node refreshes its liveness every third of the presence TTL and sweeps
the nodes whose liveness expired, reporting their presence members and the
channels they left empty on exactly one survivor. The conformance suite uses
this to check the multi-node semantics without Redis; ``crash()`` simulates
``kill -9``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from fazt.realtime.backplane.callbacks import run_callback
from fazt.realtime.backplane.key_safety import check_app_uuid, check_node_id, new_node_id
from fazt.realtime.backplane.registry import Registry, RegistryHandler

log = logging.getLogger(__name__)

DEFAULT_PRESENCE_TTL_SECONDS = 30.0


@dataclass
class _UserPresence:
    """One user on one presence channel: the member entry and its live connections."""

    member: dict[str, Any]
    clients: set[str] = field(default_factory=set)


@dataclass
class SweepReport:
    """What a sweep found: presence members that left, channels left empty."""

    #: (app uuid, channel, member)
    left: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: (app uuid, channel)
    vacated: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _PresenceChannel:
    """Presence on one channel. ``users`` keeps insertion order, which is join order."""

    users: dict[str, _UserPresence] = field(default_factory=dict)
    #: client id -> (node id, user id)
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)


class MemoryRegistryStore:
    """The shared registry of an in-process cluster, with node liveness.

    Everything runs on one IOLoop, so each method is atomic; ``sweep`` is the
    atomic claim that makes one survivor, and only one, report a dead node's
    presence members and vacated channels.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, MemoryRegistry] = {}
        #: node id -> loop time after which the node counts as dead
        self._expires: dict[str, float] = {}
        #: app -> client -> node
        self._connections: dict[str, dict[str, str]] = {}
        #: app -> channel -> client -> (node, packed info): see ``_pack_info``
        self._subscriptions: dict[str, dict[str, dict[str, tuple[str, Any, Any]]]] = {}
        #: app -> channel -> presence
        self._presence: dict[str, dict[str, _PresenceChannel]] = {}
        #: app -> channel -> the node holding its vacancy
        self._vacancies: dict[str, dict[str, str]] = {}

    # -- nodes --------------------------------------------------------------
    def attach(self, node: MemoryRegistry, expires_at: float) -> None:
        if node.node_id in self._nodes and self._nodes[node.node_id] is not node:
            raise ValueError(f"node id {node.node_id!r} is already used on this broker")
        self._nodes[node.node_id] = node
        self._expires[node.node_id] = expires_at

    def refresh(self, node_id: str, expires_at: float) -> bool:
        """Extend a node's liveness; False when it was already swept as dead."""
        if node_id not in self._expires:
            return False
        self._expires[node_id] = expires_at
        return True

    def detach(self, node_id: str) -> None:
        """Remove a node and everything it registered, without reporting anything."""
        self._purge(node_id)

    def sweep(self, now: float) -> SweepReport:
        """Remove every node whose liveness expired; return the presence members that
        left and the channels left without subscribers.

        Each dead node is claimed by the first sweep that sees it, so what it
        leaves behind is returned to exactly one caller.
        """
        dead = [node_id for node_id, expires in self._expires.items() if expires <= now]
        report = SweepReport()
        for node_id in dead:
            found = self._purge(node_id)
            report.left.extend(found.left)
            report.vacated.extend(found.vacated)
        return report

    def _purge(self, node_id: str) -> SweepReport:
        self._nodes.pop(node_id, None)
        self._expires.pop(node_id, None)
        report = SweepReport()
        for app_uuid, clients in list(self._connections.items()):
            for client_id in [c for c, n in clients.items() if n == node_id]:
                self.remove_connection(app_uuid, client_id)
        for app_uuid, sub_channels in list(self._subscriptions.items()):
            for channel, subs in list(sub_channels.items()):
                for client_id in [c for c, entry in subs.items() if entry[0] == node_id]:
                    if self.remove_subscription(app_uuid, channel, client_id, None):
                        report.vacated.append((app_uuid, channel))
        for app_uuid, held in list(self._vacancies.items()):
            for channel in [name for name, holder in held.items() if holder == node_id]:
                if self.settle_vacancy(node_id, app_uuid, channel):
                    report.vacated.append((app_uuid, channel))
        left = report.left
        for app_uuid, pchannels in list(self._presence.items()):
            for channel, presence in list(pchannels.items()):
                for client_id, (owner, user_id) in list(presence.clients.items()):
                    if owner != node_id:
                        continue
                    user = presence.users.get(user_id)
                    member = copy.deepcopy(user.member) if user else {"id": user_id}
                    if self.presence_leave(app_uuid, channel, client_id):
                        left.append((app_uuid, channel, member))
        return report

    def is_alive(self, node_id: str) -> bool:
        node = self._nodes.get(node_id)
        return node is not None and not node.crashed

    # -- registry: connections and subscriptions --------------------------------
    def add_connection(self, node_id: str, app_uuid: str, client_id: str) -> None:
        self._connections.setdefault(app_uuid, {})[client_id] = node_id

    def remove_connection(self, app_uuid: str, client_id: str) -> None:
        clients = self._connections.get(app_uuid)
        if clients is not None:
            clients.pop(client_id, None)
            if not clients:
                del self._connections[app_uuid]

    def connection_node(self, app_uuid: str, client_id: str) -> str | None:
        """The node holding ``client_id``, when that node is alive."""
        owner = self._connections.get(app_uuid, {}).get(client_id)
        return owner if owner is not None and self.is_alive(owner) else None

    def count_connections(self, app_uuid: str | None) -> int:
        if app_uuid is None:
            return sum(len(clients) for clients in self._connections.values())
        return len(self._connections.get(app_uuid, {}))

    def add_subscription(
        self, node_id: str, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> bool:
        """Record a subscription; True when it is the channel's first (see ``Registry``)."""
        channels = self._subscriptions.setdefault(app_uuid, {})
        subs = channels.get(channel)
        first = not subs
        if subs is None:
            subs = channels[channel] = {}
        subs[client_id] = (node_id, *_pack_info(client_id, info))
        if first and self._drop_vacancy(app_uuid, channel) is not None:
            return False  # a held vacancy is cancelled: the channel never counted as empty
        return first

    def remove_subscription(
        self, app_uuid: str, channel: str, client_id: str, holder: str | None
    ) -> bool:
        """Forget a subscription; True when it was the channel's last one. ``holder``
        (a node id) then holds the vacancy."""
        channels = self._subscriptions.get(app_uuid)
        if channels is None or channel not in channels:
            return False
        if channels[channel].pop(client_id, None) is None:
            return False
        if channels[channel]:
            return False
        del channels[channel]
        if not channels:
            del self._subscriptions[app_uuid]
        if holder is not None:
            self._vacancies.setdefault(app_uuid, {})[channel] = holder
        return True

    def settle_vacancy(self, node_id: str, app_uuid: str, channel: str) -> bool:
        """End ``node_id``'s held vacancy; True when it held it and nobody came back."""
        if self._vacancies.get(app_uuid, {}).get(channel) != node_id:
            return False
        self._drop_vacancy(app_uuid, channel)
        return self.count_subscribers(app_uuid, channel) == 0

    def _drop_vacancy(self, app_uuid: str, channel: str) -> str | None:
        held = self._vacancies.get(app_uuid)
        holder = held.pop(channel, None) if held is not None else None
        if held is not None and not held:
            del self._vacancies[app_uuid]
        return holder

    def subscribers(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        subs = self._subscriptions.get(app_uuid, {}).get(channel, {})
        return [_unpack_info(client_id, a, b) for client_id, (_, a, b) in subs.items()]

    def count_subscribers(self, app_uuid: str, channel: str) -> int:
        return len(self._subscriptions.get(app_uuid, {}).get(channel, {}))

    def count_channels(self, app_uuid: str) -> int:
        return len(self._subscriptions.get(app_uuid, {}))

    # -- registry: presence -------------------------------------------------------
    def presence_join(
        self, node_id: str, app_uuid: str, channel: str, client_id: str, member: dict[str, Any]
    ) -> bool:
        presence = self._presence.setdefault(app_uuid, {}).setdefault(channel, _PresenceChannel())
        if client_id in presence.clients:
            return False
        user_id = str(member["id"])
        presence.clients[client_id] = (node_id, user_id)
        user = presence.users.get(user_id)
        if user is None:
            presence.users[user_id] = _UserPresence(copy.deepcopy(member), {client_id})
            return True
        user.clients.add(client_id)
        return False

    def presence_leave(self, app_uuid: str, channel: str, client_id: str) -> bool:
        presence = self._presence.get(app_uuid, {}).get(channel)
        if presence is None or client_id not in presence.clients:
            return False
        # The user id recorded at join is authoritative: a caller cannot make
        # another user leave by passing the wrong id.
        _, user_id = presence.clients.pop(client_id)
        user = presence.users[user_id]
        user.clients.discard(client_id)
        last = not user.clients
        if last:
            del presence.users[user_id]
        if not presence.clients:
            del self._presence[app_uuid][channel]
            if not self._presence[app_uuid]:
                del self._presence[app_uuid]
        return last

    def presence_members(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        presence = self._presence.get(app_uuid, {}).get(channel)
        if presence is None:
            return []
        return [copy.deepcopy(user.member) for user in presence.users.values()]


class MemoryRegistry(Registry):
    """One node on a ``MemoryRegistryStore``; with no store, a single node on its own.

    ``presence_ttl_seconds`` bounds how long a crashed node's entries survive on
    a shared store: each node refreshes its liveness every third of the TTL and
    sweeps dead nodes at the same pace. A lone node runs no timers.
    """

    def __init__(
        self,
        store: MemoryRegistryStore | None = None,
        node_id: str | None = None,
        *,
        presence_ttl_seconds: float = DEFAULT_PRESENCE_TTL_SECONDS,
    ) -> None:
        if presence_ttl_seconds <= 0:
            raise ValueError("presence_ttl_seconds must be positive")
        self.node_id = check_node_id(node_id) if node_id is not None else new_node_id()
        self._shared = store is not None
        self._store = store if store is not None else MemoryRegistryStore()
        self._ttl = float(presence_ttl_seconds)
        self._handler: RegistryHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        #: True after ``crash()``: the node stops refreshing and reports nothing.
        self.crashed = False

    # -- life cycle ---------------------------------------------------------
    async def start(self, handler: RegistryHandler) -> None:
        if self._started:
            raise RuntimeError("registry already started")
        loop = asyncio.get_running_loop()
        self._store.attach(self, loop.time() + self._ttl)
        self._handler = handler
        self._started = True
        if self._shared:
            self._schedule_liveness()

    async def stop(self) -> None:
        self._cancel_timer()
        if self._started and not self.crashed:
            self._store.detach(self.node_id)
        self._started = False
        self._handler = None

    def crash(self) -> None:
        """Simulate ``kill -9``: stop refreshing, leave every entry behind.

        Survivors remove the entries once the TTL has passed, as they would for a
        process that died. For tests.
        """
        self.crashed = True
        self._cancel_timer()

    def _schedule_liveness(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._ttl / 3, self._refresh_and_sweep)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refresh_and_sweep(self) -> None:
        """Refresh this node's liveness, then sweep the dead nodes (every TTL/3)."""
        self._timer = None
        if self.crashed or not self._started:
            return
        now = asyncio.get_running_loop().time()
        if not self._store.refresh(self.node_id, now + self._ttl):
            # Swept while alive (the loop stalled past the TTL): come back. Unlike
            # the Redis registry, which keeps a mirror, the swept entries stay
            # gone; in one process this needs a loop stalled for the whole TTL.
            log.warning("registry node %s was declared dead; rejoining", self.node_id)
            self._store.attach(self, now + self._ttl)
        report = self._store.sweep(now)
        for app_uuid, channel, member in report.left:
            self._report_expired(app_uuid, channel, member)
        for app_uuid, channel in report.vacated:
            self._report_vacated(app_uuid, channel)
        self._schedule_liveness()

    def _report_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        handler = self._handler
        if handler is not None and not self.crashed:
            report = handler.presence_expired
            run_callback(lambda: report(app_uuid, channel, member), node_id=self.node_id)

    def _report_vacated(self, app_uuid: str, channel: str) -> None:
        handler = self._handler
        if handler is not None and not self.crashed:
            report = handler.channel_vacated
            run_callback(lambda: report(app_uuid, channel), node_id=self.node_id)

    # -- connections ----------------------------------------------------------
    async def add_connection(self, app_uuid: str, client_id: str) -> None:
        self._store.add_connection(self.node_id, check_app_uuid(app_uuid), client_id)

    async def remove_connection(self, app_uuid: str, client_id: str) -> None:
        self._store.remove_connection(check_app_uuid(app_uuid), client_id)

    async def count_connections(self, app_uuid: str | None = None) -> int:
        if app_uuid is not None:
            check_app_uuid(app_uuid)
        return self._store.count_connections(app_uuid)

    async def connection_node(self, app_uuid: str, client_id: str) -> str | None:
        return self._store.connection_node(check_app_uuid(app_uuid), client_id)

    # -- subscriptions --------------------------------------------------------
    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> bool:
        return self._store.add_subscription(
            self.node_id, check_app_uuid(app_uuid), channel, client_id, info
        )

    async def remove_subscription(
        self, app_uuid: str, channel: str, client_id: str, *, hold_vacancy: bool = False
    ) -> bool:
        holder = self.node_id if hold_vacancy else None
        return self._store.remove_subscription(check_app_uuid(app_uuid), channel, client_id, holder)

    async def settle_vacancy(self, app_uuid: str, channel: str) -> bool:
        return self._store.settle_vacancy(self.node_id, check_app_uuid(app_uuid), channel)

    async def subscribers(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        return self._store.subscribers(check_app_uuid(app_uuid), channel)

    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        return self._store.count_subscribers(check_app_uuid(app_uuid), channel)

    async def count_channels(self, app_uuid: str) -> int:
        return self._store.count_channels(check_app_uuid(app_uuid))

    # -- presence ---------------------------------------------------------------
    async def presence_join(
        self, app_uuid: str, channel: str, client_id: str, member: dict[str, Any]
    ) -> bool:
        _check_member(member)
        return self._store.presence_join(
            self.node_id, check_app_uuid(app_uuid), channel, client_id, member
        )

    async def presence_leave(
        self, app_uuid: str, channel: str, client_id: str, user_id: str
    ) -> bool:
        return self._store.presence_leave(check_app_uuid(app_uuid), channel, client_id)

    async def presence_members(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        return self._store.presence_members(check_app_uuid(app_uuid), channel)


_HUB_INFO_KEYS = frozenset(("clientId", "connectedAt", "metadata"))
_NO_METADATA = object()  # the second packed field when the first is a whole info dict


def _pack_info(client_id: str, info: dict[str, Any]) -> tuple[Any, Any]:
    """A private copy of a subscriber's info, compact in the common case.

    The hub's info is ``{clientId, connectedAt, metadata}`` with ``clientId``
    equal to the registry key: it is kept as ``(connectedAt, metadata or None)``,
    about 100 bytes instead of 400 for the dicts. Any other shape is deep-copied
    whole, as ``(info, _NO_METADATA)``.
    """
    if (
        info.keys() == _HUB_INFO_KEYS
        and info["clientId"] == client_id
        and isinstance(info["metadata"], dict)
    ):
        metadata = info["metadata"]
        return info["connectedAt"], (copy.deepcopy(metadata) if metadata else None)
    return copy.deepcopy(info), _NO_METADATA


def _unpack_info(client_id: str, first: Any, second: Any) -> dict[str, Any]:
    """A fresh copy of the info ``_pack_info`` stored (callers may mutate it)."""
    if second is _NO_METADATA:
        return copy.deepcopy(first)
    return {
        "clientId": client_id,
        "connectedAt": first,
        "metadata": copy.deepcopy(second) if second is not None else {},
    }


def _check_member(member: object) -> None:
    """A presence member must be an object with a string ``id`` (the user id)."""
    if not isinstance(member, dict) or not isinstance(member.get("id"), str):
        raise ValueError("a presence member must be a dict with a string 'id'")
