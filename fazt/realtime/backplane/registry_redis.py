"""The Redis registry: cluster-wide connections, subscriptions and presence, with liveness.

Every update is one Lua script (see ``redis_scripts``), so it is atomic across
nodes. Each node keeps a liveness key with a TTL (the presence TTL, 30 s by
default) and refreshes it every third of the TTL. Every node also sweeps at
that pace: one atomic script claims each node whose liveness key has expired,
removes its connections, subscriptions, presence entries and held vacancies,
and returns the presence members that left and the channels left without
subscribers, so exactly one survivor reports them through
``RegistryHandler.presence_expired`` and ``channel_vacated``.

Outages. Every call goes through the node's ``RedisLink`` with a local answer
as its fallback: the registry keeps a mirror of this node's own entries, so
while Redis is unreachable writes go to the mirror only and reads answer from
it (local-only figures). When the link reconnects, its reconnect hook replaces
this node's entries in Redis with the mirror, in one MULTI/EXEC, so clients
that left meanwhile do not linger and other nodes never see the node
half-registered. Presence changes made during an outage are not announced on
other nodes, and first and last subscribers are then this node's own (a
channel may be reported occupied or vacated by more than one node); held
vacancies do not survive an outage.

Corrupt registry entries are skipped and counted (``RedisLink.note_invalid``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Final

from fazt.realtime.backplane import redis_scripts as lua
from fazt.realtime.backplane.callbacks import run_callback
from fazt.realtime.backplane.key_safety import check_app_uuid
from fazt.realtime.backplane.redis_link import RedisLink, run_script
from fazt.realtime.backplane.registry import Registry, RegistryHandler

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

log = logging.getLogger("fazt.realtime.backplane.redis")

DEFAULT_PRESENCE_TTL_SECONDS: Final = 30.0
_PREFIX: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

_SCRIPTS: Final = (
    "REFRESH",
    "SWEEP",
    "LEAVE_CLUSTER",
    "RESET_NODE",
    "ADD_CONNECTION",
    "REMOVE_CONNECTION",
    "COUNT_ALL_CONNECTIONS",
    "CONNECTION_NODE",
    "ADD_SUBSCRIPTION",
    "REMOVE_SUBSCRIPTION",
    "SETTLE_VACANCY",
    "PRESENCE_JOIN",
    "PRESENCE_LEAVE",
    "PRESENCE_MEMBERS",
)


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` when it may start every key and topic; raise ``ValueError`` otherwise."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"invalid Redis key prefix {prefix!r}: 1-64 of [A-Za-z0-9_.:-]")
    return prefix


class RedisRegistry(Registry):
    """One node's registry over ``link``.

    ``presence_ttl_seconds`` bounds how long a crashed node's clients stay
    listed; ``prefix`` starts every key, so several clusters can share one Redis.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        node_id: str,
        prefix: str,
        presence_ttl_seconds: float = DEFAULT_PRESENCE_TTL_SECONDS,
    ) -> None:
        if not isinstance(presence_ttl_seconds, int | float) or not presence_ttl_seconds > 0:
            raise ValueError(
                f"presence_ttl_seconds must be a positive number, got {presence_ttl_seconds!r}"
            )
        self.link = link
        self.node_id = node_id
        self._prefix = check_prefix(prefix)
        self._ttl = float(presence_ttl_seconds)
        self._handler: RegistryHandler | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._liveness: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        # Local mirror of this node's entries: the outage answers, replayed after one.
        self._conns: dict[str, set[str]] = {}
        self._subs: dict[tuple[str, str], dict[str, str]] = {}
        self._pres: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}

    @property
    def connected(self) -> bool:
        """True while Redis is reachable and this node is registered."""
        return self.link.up and self._handler is not None

    # -- life cycle ---------------------------------------------------------
    async def start(self, handler: RegistryHandler) -> None:
        if self._handler is not None:
            raise RuntimeError("registry already started")
        await self.link.acquire()
        try:
            self._scripts = {
                name: self.link.register_script(getattr(lua, name)) for name in _SCRIPTS
            }
            await self._register_all()
        except BaseException as exc:
            await self.link.release()
            if isinstance(exc, Exception) and not isinstance(exc, ConnectionError):
                raise ConnectionError(f"cannot reach Redis at {self.link.safe_url}: {exc}") from exc
            raise
        self.link.add_reconnect_hook(self._register_all)
        self._handler = handler
        self._stopped = asyncio.Event()
        self._liveness = asyncio.create_task(self._keep_alive())
        log.info("backplane node %s joined the cluster on %s", self.node_id, self.link.safe_url)

    async def stop(self) -> None:
        await self._end_liveness()
        if self.link.up and self._handler is not None:
            await self._run("LEAVE_CLUSTER", [self.node_id], None)
        self._handler = None
        await self.link.release()

    async def crash(self) -> None:
        """Simulate ``kill -9``: stop refreshing, drop the connections, leave every entry
        behind. Survivors remove the entries after the presence TTL. For tests."""
        await self._end_liveness()
        self._handler = None
        await self.link.crash()

    async def _end_liveness(self) -> None:
        self._stopped.set()
        task, self._liveness = self._liveness, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task], timeout=max(1.0, self.link.socket_timeout))

    async def _register_all(self) -> None:
        """Replace this node's registry entries with its mirror, atomically.

        One MULTI/EXEC: the node's old entries are removed (clients that left
        while Redis was unreachable must not linger) and the mirror written
        back, so other nodes never see the node half-registered. Raises when
        Redis cannot be reached (the link then retries).
        """
        async with self.link.client.pipeline(transaction=True) as pipe:
            node = self.node_id
            await self._scripts["RESET_NODE"](args=[self._prefix, node], client=pipe)
            await self._scripts["REFRESH"](args=[self._prefix, node, self._ttl_ms()], client=pipe)
            for app_uuid, clients in self._conns.items():
                for client_id in clients:
                    args = [self._prefix, app_uuid, node, client_id]
                    await self._scripts["ADD_CONNECTION"](args=args, client=pipe)
            for (app_uuid, channel), subs in self._subs.items():
                for client_id, info in subs.items():
                    args = [self._prefix, app_uuid, node, channel, client_id, info]
                    await self._scripts["ADD_SUBSCRIPTION"](args=args, client=pipe)
            for (app_uuid, channel), present in self._pres.items():
                for client_id, (user_id, member) in present.items():
                    args = [self._prefix, app_uuid, node, channel, client_id, user_id, member]
                    await self._scripts["PRESENCE_JOIN"](args=args, client=pipe)
            await pipe.execute()

    def _ttl_ms(self) -> int:
        return max(1, round(self._ttl * 1000))

    async def _run(self, script: str, args: list[Any], fallback: Any) -> Any:
        """Run one registry script; ``fallback`` when Redis cannot answer."""
        return await self.link.call(
            run_script(self._scripts[script], [self._prefix, *args]), fallback
        )

    # -- liveness -------------------------------------------------------------
    async def _keep_alive(self) -> None:
        """Refresh liveness and sweep dead nodes every third of the TTL, until stopped."""
        while not self._stopped.is_set():
            # Waiting on the stop event, not a bare sleep: a cancellation that
            # redis-py swallows mid-command must not leave this loop running.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._ttl / 3)
            if not self._stopped.is_set():
                await self.refresh_liveness()

    async def refresh_liveness(self) -> None:
        """One liveness refresh and one sweep, as the timer runs them (for tests and tools).

        Does nothing while Redis is unreachable.
        """
        if not self.link.up:
            return
        rejoined = await self._run("REFRESH", [self.node_id, self._ttl_ms()], 0)
        if rejoined == 1 and self.link.up:
            # Our liveness had lapsed and survivors swept us (a stalled loop or a
            # Redis that lost its data): put our entries back.
            log.warning("backplane node %s was swept as dead; re-registering", self.node_id)
            await self.link.call(lambda _client: self._register_all(), None)
        await self.sweep()

    async def sweep(self) -> None:
        """Remove the nodes whose liveness expired and report their presence members,
        then the channels they left without subscribers."""
        result: Any = await self._run("SWEEP", [self.node_id], None)
        if not isinstance(result, list) or len(result) != 2:
            return
        found, vacated = result
        if not isinstance(found, list) or not isinstance(vacated, list):
            return
        for i in range(0, len(found) - 2, 3):
            try:
                app_uuid = found[i].decode()
                channel = found[i + 1].decode()
                member = json.loads(found[i + 2])
            except (AttributeError, UnicodeDecodeError, ValueError):
                self.link.note_invalid("an unreadable presence entry of a dead node")
                continue
            if not isinstance(member, dict):
                self.link.note_invalid("a presence member that is not an object")
                continue
            self._report_expired(app_uuid, channel, member)
        for i in range(0, len(vacated) - 1, 2):
            try:
                app_uuid, channel = vacated[i].decode(), vacated[i + 1].decode()
            except (AttributeError, UnicodeDecodeError):
                self.link.note_invalid("an unreadable channel of a dead node")
                continue
            self._report_vacated(app_uuid, channel)

    def _report_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        handler = self._handler
        if handler is not None:
            report = handler.presence_expired
            run_callback(lambda: report(app_uuid, channel, member), node_id=self.node_id)

    def _report_vacated(self, app_uuid: str, channel: str) -> None:
        handler = self._handler
        if handler is not None:
            report = handler.channel_vacated
            run_callback(lambda: report(app_uuid, channel), node_id=self.node_id)

    # -- connections ----------------------------------------------------------
    async def add_connection(self, app_uuid: str, client_id: str) -> None:
        self._conns.setdefault(check_app_uuid(app_uuid), set()).add(client_id)
        await self._run("ADD_CONNECTION", [app_uuid, self.node_id, client_id], None)

    async def remove_connection(self, app_uuid: str, client_id: str) -> None:
        clients = self._conns.get(check_app_uuid(app_uuid))
        if clients is not None:
            clients.discard(client_id)
            if not clients:
                del self._conns[app_uuid]
        await self._run("REMOVE_CONNECTION", [app_uuid, self.node_id, client_id], None)

    async def count_connections(self, app_uuid: str | None = None) -> int:
        if app_uuid is None:
            local = sum(len(clients) for clients in self._conns.values())
            return int(await self._run("COUNT_ALL_CONNECTIONS", [], local))
        check_app_uuid(app_uuid)
        local = len(self._conns.get(app_uuid, ()))
        key = f"{self._prefix}:app:{app_uuid}:conns"
        return int(await self.link.call(lambda client: client.hlen(key), local))

    async def connection_node(self, app_uuid: str, client_id: str) -> str | None:
        check_app_uuid(app_uuid)
        # While Redis is away, only our own clients can be found.
        local = self.node_id if client_id in self._conns.get(app_uuid, ()) else None
        found = await self._run("CONNECTION_NODE", [app_uuid, client_id], local)
        if isinstance(found, bytes):
            return found.decode("utf-8", "replace")
        return found if isinstance(found, str) else None

    # -- subscriptions --------------------------------------------------------
    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> bool:
        info_json = _to_json(info, "subscriber info")
        subs = self._subs.setdefault((check_app_uuid(app_uuid), channel), {})
        # While Redis is away, only this node's own subscribers can be seen.
        first_locally = not subs
        subs[client_id] = info_json
        args = [app_uuid, self.node_id, channel, client_id, info_json]
        result = await self._run("ADD_SUBSCRIPTION", args, None)
        return first_locally if result is None else result == 1

    async def remove_subscription(
        self, app_uuid: str, channel: str, client_id: str, *, hold_vacancy: bool = False
    ) -> bool:
        key = (check_app_uuid(app_uuid), channel)
        subs = self._subs.get(key)
        last_locally = False
        if subs is not None and subs.pop(client_id, None) is not None:
            last_locally = not subs
        if subs is not None and not subs:
            del self._subs[key]
        args = [app_uuid, self.node_id, channel, client_id, "1" if hold_vacancy else "0"]
        result = await self._run("REMOVE_SUBSCRIPTION", args, None)
        return last_locally if result is None else result == 1

    async def settle_vacancy(self, app_uuid: str, channel: str) -> bool:
        check_app_uuid(app_uuid)
        # While Redis is away, the local answer: no subscriber of this node came back.
        empty_locally = (app_uuid, channel) not in self._subs
        result = await self._run("SETTLE_VACANCY", [app_uuid, self.node_id, channel], None)
        return empty_locally if result is None else result == 1

    async def subscribers(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        check_app_uuid(app_uuid)
        local = [json.loads(info) for info in self._subs.get((app_uuid, channel), {}).values()]
        key = f"{self._prefix}:app:{app_uuid}:ch:{channel}:subs"
        values = await self.link.call(lambda client: client.hvals(key), None)
        if not isinstance(values, list):
            return local
        found: list[dict[str, Any]] = []
        for value in values:
            info = _json_after_owner(value)
            if info is None:
                self.link.note_invalid("an unreadable subscriber entry")
            else:
                found.append(info)
        return found

    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        check_app_uuid(app_uuid)
        local = len(self._subs.get((app_uuid, channel), {}))
        key = f"{self._prefix}:app:{app_uuid}:ch:{channel}:subs"
        return int(await self.link.call(lambda client: client.hlen(key), local))

    async def count_channels(self, app_uuid: str) -> int:
        check_app_uuid(app_uuid)
        local = sum(1 for app, _ in self._subs if app == app_uuid)
        key = f"{self._prefix}:app:{app_uuid}:chans"
        return int(await self.link.call(lambda client: client.scard(key), local))

    # -- presence ---------------------------------------------------------------
    async def presence_join(
        self, app_uuid: str, channel: str, client_id: str, member: dict[str, Any]
    ) -> bool:
        if not isinstance(member, dict) or not isinstance(member.get("id"), str):
            raise ValueError("a presence member must be a dict with a string 'id'")
        member_json = _to_json(member, "presence member")
        user_id: str = member["id"]
        present = self._pres.setdefault((check_app_uuid(app_uuid), channel), {})
        if client_id in present:
            return False
        # While Redis is away, only local tabs can be deduplicated.
        first_locally = all(user != user_id for user, _ in present.values())
        present[client_id] = (user_id, member_json)
        args = [app_uuid, self.node_id, channel, client_id, user_id, member_json]
        result = await self._run("PRESENCE_JOIN", args, None)
        return first_locally if result is None else result == 1

    async def presence_leave(
        self, app_uuid: str, channel: str, client_id: str, user_id: str
    ) -> bool:
        key = (check_app_uuid(app_uuid), channel)
        present = self._pres.get(key, {})
        entry = present.pop(client_id, None)
        if not present:
            self._pres.pop(key, None)
        if entry is None:
            return False
        last_locally = all(user != entry[0] for user, _ in present.values())
        result = await self._run(
            "PRESENCE_LEAVE", [app_uuid, self.node_id, channel, client_id], None
        )
        return last_locally if result is None else result == 1

    async def presence_members(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        check_app_uuid(app_uuid)
        local: dict[str, dict[str, Any]] = {}
        for user_id, member_json in self._pres.get((app_uuid, channel), {}).values():
            local.setdefault(user_id, json.loads(member_json))
        found = await self._run("PRESENCE_MEMBERS", [app_uuid, channel], None)
        if not isinstance(found, list):
            return list(local.values())
        members: list[dict[str, Any]] = []
        for raw in found:
            try:
                member: Any = json.loads(raw)
            except (TypeError, ValueError):
                member = None
            if isinstance(member, dict):
                members.append(member)
            else:
                self.link.note_invalid("an unreadable presence member")
        return members


def _to_json(value: dict[str, Any], what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the {what} must be JSON-serialisable: {exc}") from exc


def _json_after_owner(value: object) -> dict[str, Any] | None:
    """Decode a ``"<node id> <JSON object>"`` registry value; None when malformed."""
    if not isinstance(value, bytes):
        return None
    _, sep, text = value.partition(b" ")
    try:
        decoded = json.loads(text.decode("utf-8")) if sep else None
    except (UnicodeDecodeError, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None
