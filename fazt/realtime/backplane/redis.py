"""The Redis backplane: many kernel processes, on one or many machines, act as one hub.

Bus. Each node holds one Redis pub/sub connection and SUBSCRIBEs to exactly the
topics it needs: one per channel that has local subscribers, and per app with
local clients the app topic (``broadcastAll``) and its own kick topic. There is
no pattern subscription, so a node never receives traffic it would throw away,
apart from the echo of its own publishes (Redis delivers a PUBLISH to every
subscriber of the topic, the publisher included); each message carries its
sender's node id in an envelope, ``<node id>\\n<payload>``, and a node skips
its own.

Registry. Every update is one Lua script (see ``redis_scripts``), so it is
atomic across nodes. Each node keeps a liveness key with a TTL (the presence
TTL, 30 s by default) and refreshes it every third of the TTL. Every node also
sweeps at that pace: one atomic script claims each node whose liveness key has
expired, removes its connections, subscriptions and presence entries, and
returns the presence members that left, so exactly one survivor reports them
through ``BackplaneHandler.presence_expired``.

Outages. When Redis cannot be reached, the node keeps serving its local
clients: registry writes go to a local mirror only, registry reads answer from
the mirror (local-only figures), and publishes are dropped and counted in
``dropped_messages`` (nothing is queued, so memory stays bounded). The outage
is logged once when it starts and once when it ends. A background task
reconnects with full-jitter exponential backoff, subscribes again, and
re-registers everything in the mirror, after which cross-node delivery resumes.
Messages published while Redis was unreachable are not delivered to other
nodes, and presence changes made meanwhile are not announced cross-node.

Hostile or garbage data on the topics (bad envelopes, non-UTF-8 or non-JSON
payloads, bad kicks) is dropped, counted in ``invalid_messages`` and logged at
most once a minute; it never reaches the hub or crashes the node.

redis-py is imported lazily, so fazt without the ``redis`` extra still works and
only a node that asks for Redis learns that it must install the ``redis`` extra
(``pip install -e '.[redis]'`` in the repository).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from fazt.realtime.backplane import redis_scripts as lua
from fazt.realtime.backplane.base import Backplane, BackplaneHandler
from fazt.realtime.backplane.names import check_app_uuid, check_node_id, new_node_id

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PRESENCE_TTL_SECONDS = 30.0
#: Payloads larger than this found on a topic are dropped as invalid; the hub's
#: own messages are bounded far below it by ``maxMessageSizeKB``.
MAX_PAYLOAD_BYTES = 1024 * 1024
_PREFIX = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_INVALID_LOG_INTERVAL_SECONDS = 60.0

# Topic kinds, kept in the node's topic table.
_CHANNEL, _APP, _KICK, _CONTROL = range(4)

INSTALL_HINT = (
    "the Redis backplane needs redis-py: run pip install -e '.[redis]' in the fazt repository "
    "(or pip install redis in fazt's virtualenv)"
)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2.0 ** min(attempt, 30))))


def redact_url(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable Redis URL>"


class RedisBackplane(Backplane):
    """One node of a cluster joined through the Redis server at ``url``.

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``, ``rediss://``,
    ``unix://``). ``presence_ttl_seconds`` bounds how long a crashed node's
    clients stay listed. ``prefix`` starts every key and topic, so several
    clusters can share one Redis. ``reconnect_max_seconds`` caps the backoff
    between reconnection attempts; ``socket_timeout_seconds`` bounds each Redis
    command, so an unreachable server turns into an outage instead of a hang.
    ``max_connections`` bounds this node's Redis connections (the subscriber
    connection included); when all stay busy for the socket timeout, the call
    fails soft (counted in ``busy_failures``) without declaring an outage.

    Raises ``ValueError`` for bad arguments and ``RuntimeError`` (with the
    install hint) when redis-py is missing. ``start`` raises ``ConnectionError``
    when Redis cannot be reached at start-up: a node does not start half-joined.
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        presence_ttl_seconds: float = DEFAULT_PRESENCE_TTL_SECONDS,
        prefix: str = "fazt",
        reconnect_max_seconds: float = 5.0,
        socket_timeout_seconds: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401  (lazy: the redis extra is optional)
        except ImportError as exc:
            raise RuntimeError(INSTALL_HINT) from exc
        if not isinstance(url, str) or not url:
            raise ValueError(
                "the Redis URL must be a non-empty string, e.g. redis://127.0.0.1:6379/0"
            )
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ValueError(f"invalid Redis key prefix {prefix!r}: 1-64 of [A-Za-z0-9_.:-]")
        for name, value in (
            ("presence_ttl_seconds", presence_ttl_seconds),
            ("reconnect_max_seconds", reconnect_max_seconds),
            ("socket_timeout_seconds", socket_timeout_seconds),
        ):
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(max_connections, int) or max_connections < 2:
            raise ValueError("max_connections must be an integer >= 2 (one is the subscriber)")
        self._max_connections = max_connections
        self.node_id = check_node_id(node_id) if node_id is not None else new_node_id()
        self.url = url
        self._safe_url = redact_url(url)
        self._prefix = prefix
        self._ttl = float(presence_ttl_seconds)
        self._reconnect_max = float(reconnect_max_seconds)
        self._socket_timeout = float(socket_timeout_seconds)
        self._envelope_head = self.node_id.encode() + b"\n"
        self._rng = random.Random()

        self._handler: BackplaneHandler | None = None
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._up = False
        self._stopping = False
        self._stopped = asyncio.Event()
        self._down_since = 0.0
        self._dropped_at_outage = 0
        self._last_invalid_log = -_INVALID_LOG_INTERVAL_SECONDS

        # topic -> (kind, app uuid, channel): what this node subscribes to.
        self._topics: dict[bytes, tuple[int, str, str]] = {}
        # Local mirror of this node's registry entries, replayed after an outage.
        self._conns: dict[str, set[str]] = {}
        self._subs: dict[tuple[str, str], dict[str, str]] = {}
        self._pres: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}

        #: Messages not sent to other nodes because Redis was unreachable.
        self.dropped_messages = 0
        #: Messages found on a topic that were malformed, and dropped.
        self.invalid_messages = 0
        #: Outages seen since start.
        self.outages = 0
        #: Calls that failed because every pooled connection stayed busy.
        self.busy_failures = 0
        self._last_busy_log = -_INVALID_LOG_INTERVAL_SECONDS

    @property
    def connected(self) -> bool:
        """True while Redis is reachable and this node is registered."""
        return self._up

    # -- keys and topics ----------------------------------------------------
    def _channel_topic(self, app_uuid: str, channel: str) -> bytes:
        return f"{self._prefix}:app:{app_uuid}:ch:{channel}".encode()

    def _app_topic(self, app_uuid: str) -> bytes:
        return f"{self._prefix}:app:{app_uuid}:all".encode()

    def _kick_topic(self, app_uuid: str) -> bytes:
        return f"{self._prefix}:app:{app_uuid}:kick:{self.node_id}".encode()

    # -- life cycle ---------------------------------------------------------
    async def start(self, handler: BackplaneHandler) -> None:
        if self._client is not None:
            raise RuntimeError("backplane already started")
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._handler = handler
        self._stopping = False
        self._stopped = asyncio.Event()
        try:
            # No retries inside redis-py: an unreachable server must become an
            # outage at once (handled here), not a command stuck in retries.
            # A blocking pool bounds this node's connections to Redis: under load,
            # commands wait for a free connection (up to the socket timeout)
            # instead of opening one per concurrent request.
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self._max_connections,
                timeout=self._socket_timeout,
                retry=Retry(NoBackoff(), 0),
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
            )
            self._client = Redis.from_pool(pool)
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {self._safe_url!r}: {exc}") from exc
        self._scripts = {
            name: self._client.register_script(getattr(lua, name))
            for name in (
                "REFRESH",
                "SWEEP",
                "LEAVE_CLUSTER",
                "RESET_NODE",
                "ADD_CONNECTION",
                "REMOVE_CONNECTION",
                "COUNT_ALL_CONNECTIONS",
                "ADD_SUBSCRIPTION",
                "REMOVE_SUBSCRIPTION",
                "PRESENCE_JOIN",
                "PRESENCE_LEAVE",
                "PRESENCE_MEMBERS",
                "KICK",
            )
        }
        self._topics[f"{self._prefix}:node:{self.node_id}:ctl".encode()] = (_CONTROL, "", "")
        try:
            await self._connect()
        except Exception as exc:
            await self._close_client()
            raise ConnectionError(f"cannot reach Redis at {self._safe_url}: {exc}") from exc
        self._heartbeat = asyncio.create_task(self._beat())
        log.info("backplane node %s joined the cluster on %s", self.node_id, self._safe_url)

    async def stop(self) -> None:
        await self._end_tasks()
        if self._up:
            await self._run("LEAVE_CLUSTER", [self.node_id], None)
        self._up = False
        await self._close_client()
        self._handler = None

    async def crash(self) -> None:
        """Simulate ``kill -9``: drop every connection to Redis, leave all entries behind.

        Survivors remove the entries after the presence TTL. For tests.
        """
        await self._end_tasks()
        self._up = False
        await self._close_client()
        self._handler = None

    async def _end_tasks(self) -> None:
        """Stop the heartbeat, recovery and reader tasks and wait for them."""
        self._stopping = True
        self._stopped.set()
        tasks = [
            task
            for task in (self._heartbeat, self._recovery, self._reader)
            if task is not None and task is not asyncio.current_task()
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(1.0, self._socket_timeout))
        self._heartbeat = self._recovery = self._reader = None

    async def _close_client(self) -> None:
        await self._close_pubsub()
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except Exception:
                log.debug("closing the Redis client failed", exc_info=True)

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except Exception:
                log.debug("closing the Redis subscriber failed", exc_info=True)

    async def _connect(self) -> None:
        """Subscribe to every topic, register this node and its mirror, start reading."""
        assert self._client is not None
        await self._client.ping()
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub = pubsub
        await pubsub.subscribe(*list(self._topics))
        await self._register_all()
        self._up = True
        self._reader = asyncio.create_task(self._read(pubsub))

    async def _register_all(self) -> None:
        """Replace this node's registry entries with its mirror, atomically.

        One MULTI/EXEC: the node's old entries are removed (clients that left
        while Redis was unreachable must not linger) and the mirror written
        back, so other nodes never see the node half-registered.
        """
        assert self._client is not None
        async with self._client.pipeline(transaction=True) as pipe:
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

    # -- outage handling ------------------------------------------------------
    def _mark_down(self, exc: BaseException) -> None:
        """Enter outage mode once; the recovery task takes it from there."""
        if not self._up or self._stopping:
            return
        self._up = False
        self.outages += 1
        self._down_since = asyncio.get_running_loop().time()
        self._dropped_at_outage = self.dropped_messages
        log.warning(
            "Redis at %s is unreachable (%s): node %s keeps serving its local clients; "
            "messages for other nodes are dropped until it is back; reconnecting",
            self._safe_url,
            exc,
            self.node_id,
        )
        self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._reader = None
        await self._close_pubsub()
        attempt = 0
        while not self._stopping:
            delay = backoff_delay(attempt, base=0.05, cap=self._reconnect_max, rng=self._rng)
            await asyncio.sleep(delay)
            attempt += 1
            try:
                # Drop every pooled connection first: after a Redis restart they
                # are all dead, and one handed out later would start a new outage.
                if self._client is not None:
                    await self._client.connection_pool.disconnect()
                await self._connect()
            except Exception as exc:
                log.debug("Redis reconnection attempt %d failed: %s", attempt, exc)
                await self._close_pubsub()
                continue
            self._recovery = None
            log.warning(
                "Redis at %s is reachable again after %.1f s: node %s resubscribed to %d "
                "topics and re-registered its entries (%d messages were dropped meanwhile)",
                self._safe_url,
                asyncio.get_running_loop().time() - self._down_since,
                self.node_id,
                len(self._topics),
                self.dropped_messages - self._dropped_at_outage,
            )
            return

    async def _run(self, script: str, args: list[Any], fallback: T) -> Any | T:
        """Run one registry script; on failure return ``fallback`` (and maybe enter outage)."""
        if not self._up:
            return fallback
        return await self._guard(
            lambda: self._scripts[script](args=[self._prefix, *args]), fallback
        )

    async def _guard(self, call: Callable[[], Awaitable[Any]], fallback: T) -> Any | T:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            return await call()
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                # Every pooled connection stayed busy for the socket timeout: Redis
                # is slow or this node is overloaded, not cut off. This call fails.
                self.busy_failures += 1
                self._note_busy()
            else:
                self._mark_down(exc)
        except (RedisTimeoutError, OSError, TimeoutError) as exc:
            self._mark_down(exc)
        except RedisError as exc:
            # A server-side error (a script error on corrupted keys, READONLY...):
            # this call fails soft, the node stays up.
            log.error("Redis command failed on node %s: %s", self.node_id, exc)
        return fallback

    async def _beat(self) -> None:
        """Refresh liveness and sweep dead nodes every third of the TTL, until stopped."""
        while not self._stopping:
            # Waiting on the stop event, not a bare sleep: a cancellation that
            # redis-py swallows mid-command must not leave this loop running.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._ttl / 3)
            if not self._stopping:
                await self.heartbeat()

    async def heartbeat(self) -> None:
        """One liveness refresh and one sweep, as the timer runs them (for tests and tools).

        Does nothing while Redis is unreachable.
        """
        if not self._up:
            return
        rejoined = await self._run("REFRESH", [self.node_id, self._ttl_ms()], 0)
        if rejoined == 1 and self._up:
            # Our liveness had lapsed and survivors swept us (a stalled loop or a
            # Redis that lost its data): put our entries back.
            log.warning("backplane node %s was swept as dead; re-registering", self.node_id)
            await self._guard(self._register_all, None)
        await self.sweep()

    async def sweep(self) -> None:
        """Remove the nodes whose liveness expired and report their presence members."""
        found: Any = await self._run("SWEEP", [self.node_id], None)
        self._report_expired(found)

    def _report_expired(self, found: Any) -> None:
        if not isinstance(found, list):
            return
        for i in range(0, len(found) - 2, 3):
            try:
                app_uuid = found[i].decode()
                channel = found[i + 1].decode()
                member = json.loads(found[i + 2])
            except (AttributeError, UnicodeDecodeError, ValueError):
                self._note_invalid("an unreadable presence entry of a dead node")
                continue
            if not isinstance(member, dict):
                self._note_invalid("a presence member that is not an object")
                continue
            self._call(_expired(app_uuid, channel, member))

    # -- receiving ------------------------------------------------------------
    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None and message.get("type") == "message":
                    self._dispatch(message.get("channel"), message.get("data"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._mark_down(exc)

    def _dispatch(self, topic: object, data: object) -> None:
        """Route one pub/sub message to the hub; drop anything malformed."""
        if not isinstance(topic, bytes) or not isinstance(data, bytes):
            self._note_invalid("a message that is not bytes")
            return
        route = self._topics.get(topic)
        if route is None:
            return  # a topic we just left; its last messages are moot
        kind, app_uuid, channel = route
        if kind == _KICK:
            self._dispatch_kick(app_uuid, data)
            return
        if kind == _CONTROL:
            return
        sender, sep, payload = data.partition(b"\n")
        if not sep or not sender:
            self._note_invalid("a message without a sender envelope")
            return
        if sender == self._envelope_head[:-1]:
            return  # our own publish, echoed back by Redis
        if not _is_json_object(payload):
            self._note_invalid("a payload that is not a UTF-8 JSON object")
            return
        if kind == _CHANNEL:
            self._call(lambda h: h.deliver_channel(app_uuid, channel, payload))
        else:
            self._call(lambda h: h.deliver_app(app_uuid, payload))

    def _dispatch_kick(self, app_uuid: str, data: bytes) -> None:
        try:
            kick = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            kick = None
        if (
            not isinstance(kick, dict)
            or not isinstance(kick.get("clientId"), str)
            or not isinstance(kick.get("reason"), str)
        ):
            self._note_invalid("a malformed kick")
            return
        client_id: str = kick["clientId"]
        reason: str = kick["reason"]
        self._call(lambda h: h.kick_local(app_uuid, client_id, reason))

    def _note_invalid(self, what: str) -> None:
        self.invalid_messages += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_invalid_log >= _INVALID_LOG_INTERVAL_SECONDS:
            self._last_invalid_log = now
            log.warning(
                "backplane node %s dropped %s (%d invalid messages so far)",
                self.node_id,
                what,
                self.invalid_messages,
            )

    def _note_busy(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_busy_log >= _INVALID_LOG_INTERVAL_SECONDS:
            self._last_busy_log = now
            log.warning(
                "backplane node %s: all %d Redis connections stayed busy for %.1f s; "
                "%d calls failed so far (messages dropped, local answers used)",
                self.node_id,
                self._max_connections,
                self._socket_timeout,
                self.busy_failures,
            )

    def _call(self, action: Callable[[BackplaneHandler], None]) -> None:
        """Run one hub callback; a failing callback is logged, never fatal."""
        handler = self._handler
        if handler is None:
            return
        try:
            action(handler)
        except Exception:
            log.exception("backplane handler failed on node %s", self.node_id)

    # -- bus ----------------------------------------------------------------
    async def _subscribe(self, topics: dict[bytes, tuple[int, str, str]]) -> None:
        fresh = [topic for topic in topics if topic not in self._topics]
        self._topics.update(topics)
        pubsub = self._pubsub
        if fresh and self._up and pubsub is not None:
            await self._guard(lambda: pubsub.subscribe(*fresh), None)

    async def _unsubscribe(self, topics: list[bytes]) -> None:
        gone = [topic for topic in topics if self._topics.pop(topic, None) is not None]
        pubsub = self._pubsub
        if gone and self._up and pubsub is not None:
            await self._guard(lambda: pubsub.unsubscribe(*gone), None)

    async def subscribe_channel(self, app_uuid: str, channel: str) -> None:
        check_app_uuid(app_uuid)
        await self._subscribe(
            {self._channel_topic(app_uuid, channel): (_CHANNEL, app_uuid, channel)}
        )

    async def unsubscribe_channel(self, app_uuid: str, channel: str) -> None:
        check_app_uuid(app_uuid)
        await self._unsubscribe([self._channel_topic(app_uuid, channel)])

    async def watch_app(self, app_uuid: str) -> None:
        check_app_uuid(app_uuid)
        await self._subscribe(
            {
                self._app_topic(app_uuid): (_APP, app_uuid, ""),
                self._kick_topic(app_uuid): (_KICK, app_uuid, ""),
            }
        )

    async def unwatch_app(self, app_uuid: str) -> None:
        check_app_uuid(app_uuid)
        await self._unsubscribe([self._app_topic(app_uuid), self._kick_topic(app_uuid)])

    async def _publish(self, topic: bytes, payload: bytes) -> None:
        client = self._client
        if not self._up or client is None:
            self.dropped_messages += 1
            return
        envelope = self._envelope_head + payload
        if await self._guard(lambda: client.publish(topic, envelope), None) is None:
            self.dropped_messages += 1

    async def publish_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        await self._publish(self._channel_topic(check_app_uuid(app_uuid), channel), payload)

    async def publish_app(self, app_uuid: str, payload: bytes) -> None:
        await self._publish(self._app_topic(check_app_uuid(app_uuid)), payload)

    async def send_kick(self, app_uuid: str, client_id: str, reason: str) -> bool:
        check_app_uuid(app_uuid)
        if not self._up:
            # Only our own clients can be found while Redis is away.
            if client_id in self._conns.get(app_uuid, ()):
                self._call(lambda h: h.kick_local(app_uuid, client_id, reason))
                return True
            return False
        kick = json.dumps({"clientId": client_id, "reason": reason})
        receivers = await self._run("KICK", [app_uuid, client_id, kick], 0)
        return isinstance(receivers, int) and receivers > 0

    # -- registry: connections and subscriptions ------------------------------
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
        client = self._client
        if not self._up or client is None:
            return local
        key = f"{self._prefix}:app:{app_uuid}:conns"
        return int(await self._guard(lambda: client.hlen(key), local))

    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> None:
        info_json = _to_json(info, "subscriber info")
        self._subs.setdefault((check_app_uuid(app_uuid), channel), {})[client_id] = info_json
        args = [app_uuid, self.node_id, channel, client_id, info_json]
        await self._run("ADD_SUBSCRIPTION", args, None)

    async def remove_subscription(self, app_uuid: str, channel: str, client_id: str) -> None:
        key = (check_app_uuid(app_uuid), channel)
        subs = self._subs.get(key)
        if subs is not None:
            subs.pop(client_id, None)
            if not subs:
                del self._subs[key]
        await self._run("REMOVE_SUBSCRIPTION", [app_uuid, self.node_id, channel, client_id], None)

    async def subscribers(self, app_uuid: str, channel: str) -> list[dict[str, Any]]:
        check_app_uuid(app_uuid)
        local = [json.loads(info) for info in self._subs.get((app_uuid, channel), {}).values()]
        client = self._client
        if not self._up or client is None:
            return local
        key = f"{self._prefix}:app:{app_uuid}:ch:{channel}:subs"
        values = await self._guard(lambda: client.hvals(key), None)
        if not isinstance(values, list):
            return local
        found: list[dict[str, Any]] = []
        for value in values:
            info = _json_after_owner(value)
            if info is None:
                self._note_invalid("an unreadable subscriber entry")
            else:
                found.append(info)
        return found

    async def count_subscribers(self, app_uuid: str, channel: str) -> int:
        check_app_uuid(app_uuid)
        local = len(self._subs.get((app_uuid, channel), {}))
        client = self._client
        if not self._up or client is None:
            return local
        key = f"{self._prefix}:app:{app_uuid}:ch:{channel}:subs"
        return int(await self._guard(lambda: client.hlen(key), local))

    async def count_channels(self, app_uuid: str) -> int:
        check_app_uuid(app_uuid)
        local = sum(1 for app, _ in self._subs if app == app_uuid)
        client = self._client
        if not self._up or client is None:
            return local
        key = f"{self._prefix}:app:{app_uuid}:chans"
        return int(await self._guard(lambda: client.scard(key), local))

    # -- registry: presence -----------------------------------------------------
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
                self._note_invalid("an unreadable presence member")
        return members


def _expired(
    app_uuid: str, channel: str, member: dict[str, Any]
) -> Callable[[BackplaneHandler], None]:
    return lambda handler: handler.presence_expired(app_uuid, channel, member)


def _to_json(value: dict[str, Any], what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the {what} must be JSON-serialisable: {exc}") from exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _is_json_object(payload: bytes) -> bool:
    """True when ``payload`` is the UTF-8 text of a JSON object (what clients can parse)."""
    if len(payload) > MAX_PAYLOAD_BYTES or not payload.startswith(b"{"):
        return False
    try:
        return isinstance(
            json.loads(payload.decode("utf-8"), parse_constant=_reject_constant), dict
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


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
