"""One node's link to Redis: connection supervision and the single outage fallback.

The Redis bus and the Redis registry of a node share one ``RedisLink``. The
link owns every connection to Redis (a bounded pool for commands, one
subscriber connection when the bus listens, and the ordered lane's own
connection, ``redis_lane``) and is the only place that decides what a failing
call means:

* **an outage** (connection refused or reset, a socket timeout): the link goes
  *down* once, logs it once, and a background task reconnects with full-jitter
  exponential backoff. While the link is down every ``call`` returns its
  ``fallback`` at once, without touching the network;
* **a busy pool** (every pooled connection stayed busy for the socket timeout):
  that one call returns its fallback, counted in ``busy_failures``; it is not
  an outage;
* **a server-side error** (a script error on corrupted keys, ``READONLY``...):
  that one call returns its fallback and is logged; the link stays up.

So callers never see a Redis exception after start-up: each call names the
answer to give when Redis cannot (the bus drops the publish, the registry
answers from its local mirror). On reconnection the link subscribes again to
the listener's topics, then runs the reconnect hooks (the registry writes its
entries back), and only then reports itself up.

Hostile or garbage data read from Redis is counted in ``invalid_messages`` and
logged at most once a minute (``note_invalid``). Publishes dropped because of
an outage are counted in ``dropped_messages``.

redis-py is imported lazily, so fazt without the ``redis`` extra still works and
only a node that asks for Redis learns that it must install redis-py
(``pip install -e '.[redis]'`` in the repository).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from fazt.realtime.backplane.redis_lane import OrderedLane
from fazt.realtime.backplane.resp import ReplyParser, encode_command

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection
    from redis.commands.core import AsyncScript

log = logging.getLogger("fazt.realtime.backplane.redis")

T = TypeVar("T")
F = TypeVar("F")

INSTALL_HINT = (
    "the Redis backplane needs redis-py: run pip install -e '.[redis]' in the fazt repository "
    "(or pip install redis in fazt's virtualenv)"
)
_LOG_INTERVAL_SECONDS = 60.0
#: Bytes asked of the subscriber connection per read.
_READ_BYTES = 1 << 16

#: ``on_message(topic, data)``: one pub/sub message for the listener.
MessageListener = Callable[[bytes, bytes], None]
ReconnectHook = Callable[[], Awaitable[None]]


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


def require_redis_py() -> None:
    """Raise ``RuntimeError`` with the install hint when redis-py is missing."""
    try:
        import redis.asyncio  # noqa: F401  (lazy: the redis extra is optional)
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc


class RedisLink:
    """The supervised connections of one node to the Redis server at ``url``.

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``, ``rediss://``,
    ``unix://``). ``socket_timeout_seconds`` bounds each command, so an
    unreachable server turns into an outage instead of a hang;
    ``reconnect_max_seconds`` caps the backoff between reconnection attempts;
    ``max_connections`` bounds this node's connections to Redis (the subscriber
    connection and the ordered lane's included). ``node_id`` only names the node
    in log lines.

    Users ``acquire()`` the link in their ``start`` and ``release()`` it in their
    ``stop``: the first acquire connects (``ConnectionError`` when Redis cannot be
    reached: a node does not start half-joined), the last release disconnects.
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        reconnect_max_seconds: float = 5.0,
        socket_timeout_seconds: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        require_redis_py()
        if not isinstance(url, str) or not url:
            raise ValueError(
                "the Redis URL must be a non-empty string, e.g. redis://127.0.0.1:6379/0"
            )
        for name, value in (
            ("reconnect_max_seconds", reconnect_max_seconds),
            ("socket_timeout_seconds", socket_timeout_seconds),
        ):
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(max_connections, int) or max_connections < 3:
            raise ValueError(
                "max_connections must be an integer >= 3 (one is the subscriber, one the "
                "ordered lane)"
            )
        self.url = url
        self.safe_url = redact_url(url)
        self.node_id = node_id
        self._reconnect_max = float(reconnect_max_seconds)
        self.socket_timeout = float(socket_timeout_seconds)
        self.max_connections = max_connections
        self._rng = random.Random()

        self._users = 0
        self._client: Redis | None = None
        #: The subscriber connection: SUBSCRIBE and UNSUBSCRIBE written, messages read
        #: and parsed by the link itself (``resp``), several per socket read.
        self._pubsub: AbstractConnection | None = None
        self._listener: MessageListener | None = None
        self._topics: Callable[[], list[bytes]] = list
        self._hooks: list[ReconnectHook] = []
        self._reader: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._up = False
        self._stopping = False
        self._down_since = 0.0
        self._dropped_at_outage = 0
        self._last_invalid_log = -_LOG_INTERVAL_SECONDS
        self._last_busy_log = -_LOG_INTERVAL_SECONDS
        #: topic -> one future per SUBSCRIBE sent and not yet confirmed, oldest first
        self._confirming: dict[bytes, list[asyncio.Future[None]]] = {}
        #: Writes in call order (bus publishes, history appends).
        self.ordered = OrderedLane(self)

        #: Publishes not sent to other nodes because Redis was unreachable.
        self.dropped_messages = 0
        #: Messages or registry entries read from Redis that were malformed, and dropped.
        self.invalid_messages = 0
        #: Outages seen since start.
        self.outages = 0
        #: Calls that failed because every pooled connection stayed busy.
        self.busy_failures = 0

    @property
    def up(self) -> bool:
        """True while Redis is reachable (and every reconnect hook has run)."""
        return self._up

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- life cycle -------------------------------------------------------------
    async def acquire(self) -> None:
        """Connect on first use; raises ``ConnectionError`` or ``ValueError`` (bad URL)."""
        if self._users == 0:
            await self._open()
        self._users += 1

    async def release(self) -> None:
        """Disconnect after the last user released the link."""
        if self._users == 0:
            return
        self._users -= 1
        if self._users == 0:
            await self._shut()

    async def crash(self) -> None:
        """Simulate ``kill -9``: drop every connection at once, run no cleanup. For tests."""
        self._users = 0
        await self._shut()

    async def _open(self) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._stopping = False
        try:
            # No retries inside redis-py: an unreachable server must become an
            # outage at once (handled here), not a command stuck in retries.
            # A blocking pool bounds this node's connections to Redis: under load,
            # commands wait for a free connection (up to the socket timeout)
            # instead of opening one per concurrent request.
            pool = BlockingConnectionPool.from_url(
                self.url,
                # The ordered lane's and the subscriber's connections are made
                # apart from the pool.
                max_connections=self.max_connections - 2,
                timeout=self.socket_timeout,
                retry=Retry(NoBackoff(), 0),
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
            )
            self._client = Redis.from_pool(pool)
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {self.safe_url!r}: {exc}") from exc
        try:
            await self._client.ping()
            await self.ordered.open(await self._own_connection())
        except Exception as exc:
            await self._shut()
            raise ConnectionError(f"cannot reach Redis at {self.safe_url}: {exc}") from exc
        self._up = True

    async def _own_connection(self) -> AbstractConnection:
        """A fresh connection set up as the pool's are (password, database, TLS), but
        not part of the pool: the ordered lane and the subscriber hold one each."""
        pool = self.client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        await connection.connect()  # type: ignore[no-untyped-call]
        return connection

    async def _shut(self) -> None:
        self._stopping = True
        self._up = False
        tasks = [
            task
            for task in (self._recovery, self._reader)
            if task is not None and task is not asyncio.current_task()
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=max(1.0, self.socket_timeout))
        self._recovery = self._reader = None
        self._listener = None
        self._hooks.clear()
        await self.ordered.close()
        await self._close_pubsub()
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except Exception:
                log.debug("closing the Redis client failed", exc_info=True)

    async def _close_pubsub(self) -> None:
        # Nobody waits for a confirmation that cannot come on a closed connection;
        # the reconnection subscribes to every topic again.
        confirming, self._confirming = self._confirming, {}
        for futures in confirming.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            try:
                await pubsub.disconnect()
            except Exception:
                log.debug("closing the Redis subscriber failed", exc_info=True)

    def register_script(self, source: str) -> AsyncScript:
        if self._client is None:
            raise RuntimeError("the Redis link is not open")
        return self._client.register_script(source)

    @property
    def client(self) -> Redis:
        """The command client (for pipelines inside a reconnect hook)."""
        if self._client is None:
            raise RuntimeError("the Redis link is not open")
        return self._client

    def add_reconnect_hook(self, hook: ReconnectHook) -> None:
        """Run ``hook`` after every reconnection, before the link reports itself up.

        A hook that raises makes that reconnection attempt fail (it is retried).
        """
        self._hooks.append(hook)

    # -- the subscriber connection -----------------------------------------------
    async def listen(self, on_message: MessageListener, topics: Callable[[], list[bytes]]) -> None:
        """Open the subscriber connection, SUBSCRIBE to ``topics()`` and start reading.

        ``topics()`` is asked again after every reconnection. Raises
        ``ConnectionError`` when Redis cannot be reached.
        """
        if self._listener is not None:
            raise RuntimeError("the Redis link already has a listener")
        self._listener = on_message
        self._topics = topics
        try:
            await self._subscribe_all()
        except Exception as exc:
            self._listener = None
            await self._close_pubsub()
            raise ConnectionError(f"cannot reach Redis at {self.safe_url}: {exc}") from exc
        self._start_reader()

    async def _subscribe_all(self) -> None:
        """A fresh subscriber connection, subscribed to every topic of the listener."""
        # Subscribe confirmations are read (``_read``): they tell ``subscribe`` when
        # a topic is received.
        self._pubsub = await self._own_connection()
        topics = self._topics()
        if topics:
            self._write_pubsub(b"SUBSCRIBE", topics)

    def _write_pubsub(self, command: bytes, topics: list[bytes]) -> None:
        """SUBSCRIBE or UNSUBSCRIBE on the subscriber connection (a broken connection
        is found by its reader, which takes the link down)."""
        writer = self._pubsub._writer if self._pubsub is not None else None
        if writer is not None and not writer.is_closing():
            writer.write(encode_command((command, *topics)))

    def _start_reader(self) -> None:
        if self._listener is not None and self._pubsub is not None:
            reader = self._pubsub._reader
            if reader is not None:
                self._reader = asyncio.create_task(self._read(reader))

    async def subscribe(self, topics: list[bytes], wait_for: list[bytes] | None = None) -> None:
        """SUBSCRIBE to ``topics``, and return once Redis confirmed it for them and for
        the topics in ``wait_for`` still waiting for a confirmation.

        While down, it returns at once (the next reconnection subscribes); a
        confirmation that does not come within the socket timeout is not waited
        for longer.
        """
        pubsub = self._pubsub
        if not self._up or pubsub is None:
            return
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for topic in topics:
            future: asyncio.Future[None] = loop.create_future()
            self._confirming.setdefault(topic, []).append(future)
            waits.append(future)
        for topic in wait_for or ():
            pending = self._confirming.get(topic)
            if pending:
                waits.append(pending[-1])
        if topics:
            self._write_pubsub(b"SUBSCRIBE", topics)
        if waits:
            await asyncio.wait(waits, timeout=self.socket_timeout)

    def _confirmed(self, topic: bytes) -> None:
        """Redis confirmed the oldest SUBSCRIBE of ``topic`` still unconfirmed."""
        pending = self._confirming.get(topic)
        if not pending:
            return
        future = pending.pop(0)
        if not pending:
            del self._confirming[topic]
        if not future.done():
            future.set_result(None)

    async def unsubscribe(self, topics: list[bytes]) -> None:
        if topics and self._up and self._pubsub is not None:
            self._write_pubsub(b"UNSUBSCRIBE", topics)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Every message of the subscriber connection, as many per socket read as came."""
        parser = ReplyParser()
        try:
            while True:
                data = await reader.read(_READ_BYTES)
                if not data:
                    raise ConnectionError("Redis closed the subscriber connection")
                for reply in parser.feed(data):
                    self._on_pubsub(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.mark_down(exc)

    def _on_pubsub(self, reply: object) -> None:
        """One reply of the subscriber connection: a message, or a (un)subscribe
        confirmation (RESP2 array or RESP3 push, both parsed as a list)."""
        if not isinstance(reply, list) or len(reply) != 3:
            self.note_invalid("a reply that is not a pub/sub message")
            return
        kind, topic, data = reply
        if kind == b"message":
            listener = self._listener
            if isinstance(topic, bytes) and isinstance(data, bytes):
                if listener is not None:
                    listener(topic, data)
            else:
                self.note_invalid("a message that is not bytes")
        elif kind == b"subscribe" and isinstance(topic, bytes):
            self._confirmed(topic)

    # -- calls and the outage fallback -------------------------------------------
    async def call(self, fn: Callable[[Redis], Awaitable[T]], fallback: F) -> T | F:
        """``await fn(client)``, or ``fallback`` when Redis cannot answer (see module doc)."""
        client = self._client
        if not self._up or client is None:
            return fallback
        if asyncio.current_task() is None:
            # A command stepped inside the read callback runs outside any Task until
            # it first waits (``Backplane.runs_inline``); redis-py's timeouts need a
            # Task, so yield once: the rest of the command runs in its Task.
            await asyncio.sleep(0)
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            return await fn(client)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                # Every pooled connection stayed busy for the socket timeout: Redis
                # is slow or this node is overloaded, not cut off. This call fails.
                self.busy_failures += 1
                self._note_busy()
            else:
                self.mark_down(exc)
        except (RedisTimeoutError, OSError, TimeoutError) as exc:
            self.mark_down(exc)
        except RedisError as exc:
            log.error("Redis command failed on node %s: %s", self.node_id, exc)
        return fallback

    def mark_down(self, exc: BaseException) -> None:
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
            self.safe_url,
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
        await self.ordered.close()
        attempt = 0
        while not self._stopping:
            delay = backoff_delay(attempt, base=0.05, cap=self._reconnect_max, rng=self._rng)
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._reconnect()
            except Exception as exc:
                log.debug("Redis reconnection attempt %d failed: %s", attempt, exc)
                await self._close_pubsub()
                await self.ordered.close()
                continue
            self._recovery = None
            log.warning(
                "Redis at %s is reachable again after %.1f s: node %s resubscribed to %d "
                "topics and re-registered its entries (%d messages were dropped meanwhile)",
                self.safe_url,
                asyncio.get_running_loop().time() - self._down_since,
                self.node_id,
                len(self._topics()) if self._listener is not None else 0,
                self.dropped_messages - self._dropped_at_outage,
            )
            return

    async def _reconnect(self) -> None:
        client = self.client
        # Drop every pooled connection first: after a Redis restart they are all
        # dead, and one handed out later would start a new outage.
        await client.connection_pool.disconnect()
        await client.ping()
        if self._listener is not None:
            await self._subscribe_all()
        await self.ordered.open(await self._own_connection())
        # A Redis that restarted has forgotten every script.
        await self.ordered.load_scripts(client)
        for hook in self._hooks:
            await hook()
        self._up = True
        self._start_reader()

    # -- accounting -----------------------------------------------------------------
    def note_dropped(self, count: int = 1) -> None:
        """``count`` publishes were not sent to the other nodes (Redis unreachable or busy)."""
        self.dropped_messages += count

    def note_invalid(self, what: str) -> None:
        """Malformed data was read from Redis and dropped; logged at most once a minute."""
        self.invalid_messages += 1
        now = asyncio.get_running_loop().time()
        if now - self._last_invalid_log >= _LOG_INTERVAL_SECONDS:
            self._last_invalid_log = now
            log.warning(
                "backplane node %s dropped %s (%d invalid messages so far)",
                self.node_id,
                what,
                self.invalid_messages,
            )

    def note_busy(self) -> None:
        """A call failed because this node's writes queued past their bound."""
        self.busy_failures += 1
        self._note_busy()

    def _note_busy(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_busy_log >= _LOG_INTERVAL_SECONDS:
            self._last_busy_log = now
            log.warning(
                "backplane node %s: all %d Redis connections stayed busy for %.1f s; "
                "%d calls failed so far (messages dropped, local answers used)",
                self.node_id,
                self.max_connections,
                self.socket_timeout,
                self.busy_failures,
            )


def run_script(script: AsyncScript, args: list[Any]) -> Callable[[Redis], Awaitable[Any]]:
    """A ``RedisLink.call`` function that runs one registered Lua script."""
    return lambda _client: script(args=args)
