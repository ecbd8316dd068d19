"""The three conformance suites on Redis, plus what only Redis has: the link, layout, outages.

Each test module run starts its own ``redis-server`` on a free port (persistence
off) and kills it by PID at the end; every test uses its own key prefix. The
outage tests start and kill a server of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import tornado.ioloop

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.bus_redis import RedisBus
from fazt.realtime.backplane.history import HistoryStore, HistoryUnavailable
from fazt.realtime.backplane.history_redis import RedisHistoryStore
from fazt.realtime.backplane.node import Backplane, redis_backplane
from fazt.realtime.backplane.redis_link import RedisLink, backoff_delay, redact_url
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.backplane.registry_redis import RedisRegistry
from fazt.realtime.core import RealtimeCore
from fazt.realtime.limits import Limits
from fazt.realtime.protocol import publication_head
from tests.realtime.backplane.bus_conformance import BusConformance
from tests.realtime.backplane.history_conformance import HistoryConformance, HistoryNodes
from tests.realtime.backplane.history_conformance import policy as history_policy
from tests.realtime.backplane.history_conformance import run_close as close_history
from tests.realtime.backplane.redis_server import RedisServer, needs_redis_server
from tests.realtime.backplane.registry_conformance import RegistryConformance
from tests.realtime.backplane.support import (
    Cluster,
    RecordingHandler,
    eventually,
    eventually_async,
    new_app,
    run_close,
)
from tests.realtime.fakes import FakeTransport

pytestmark = [pytest.mark.redis, needs_redis_server]

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


def _link(url: str, node_id: str | None = None) -> RedisLink:
    return RedisLink(
        url, node_id=node_id or f"n{random.getrandbits(48):x}", reconnect_max_seconds=0.2
    )


class RedisBuses(Cluster[Bus]):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.prefix = f"t{next(_prefixes)}"

    def make(self, ttl: float) -> Bus:
        link = _link(self.url)
        return RedisBus(link, node_id=link.node_id, prefix=self.prefix)

    async def kill(self, part: Bus) -> None:
        assert isinstance(part, RedisBus)
        await part.crash()


class RedisRegistries(Cluster[Registry]):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.prefix = f"t{next(_prefixes)}"

    def make(self, ttl: float) -> Registry:
        link = _link(self.url)
        return RedisRegistry(
            link, node_id=link.node_id, prefix=self.prefix, presence_ttl_seconds=ttl
        )

    async def kill(self, part: Registry) -> None:
        assert isinstance(part, RedisRegistry)
        await part.crash()


class RedisHistories(HistoryNodes):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.prefix = f"t{next(_prefixes)}"

    def make(self) -> tuple[Bus, HistoryStore]:
        link = _link(self.url)
        bus = RedisBus(link, node_id=link.node_id, prefix=self.prefix)
        return bus, RedisHistoryStore(link, node_id=link.node_id, prefix=self.prefix)

    async def age(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def lose(self) -> None:
        inspector = await _inspector(self.url)
        try:
            keys = [key async for key in inspector.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await inspector.delete(*keys)
        finally:
            await inspector.aclose()


class TestRedisHistory(HistoryConformance):
    @pytest.fixture
    def streams(
        self, io_loop: tornado.ioloop.IOLoop, redis_server: RedisServer
    ) -> Iterator[HistoryNodes]:
        nodes = RedisHistories(redis_server.url)
        yield nodes
        close_history(io_loop, nodes)


class TestRedisBus(BusConformance):
    @pytest.fixture
    def buses(
        self, io_loop: tornado.ioloop.IOLoop, redis_server: RedisServer
    ) -> Iterator[Cluster[Bus]]:
        cluster = RedisBuses(redis_server.url)
        yield cluster
        run_close(io_loop, cluster)


class TestRedisRegistry(RegistryConformance):
    @pytest.fixture
    def registries(
        self, io_loop: tornado.ioloop.IOLoop, redis_server: RedisServer
    ) -> Iterator[Cluster[Registry]]:
        cluster = RedisRegistries(redis_server.url)
        yield cluster
        run_close(io_loop, cluster)


class Nodes:
    """Whole Redis backplanes (bus and registry on one link) on one prefix."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"t{next(_prefixes)}"
        self.started: list[tuple[Backplane, RecordingHandler]] = []

    async def add(self, ttl: float = 30.0, **options: object) -> tuple[Backplane, RecordingHandler]:
        node = redis_backplane(
            self.url,
            presence_ttl_seconds=ttl,
            prefix=self.prefix,
            reconnect_max_seconds=0.2,
            **options,  # type: ignore[arg-type]
        )
        handler = RecordingHandler()
        await node.start(handler, handler)
        self.started.append((node, handler))
        return node, handler

    async def close(self) -> None:
        for node, _ in self.started:
            await node.stop()


@pytest.fixture
def nodes(io_loop: tornado.ioloop.IOLoop, redis_server: RedisServer) -> Iterator[Nodes]:
    nodes = Nodes(redis_server.url)
    yield nodes
    io_loop.run_sync(nodes.close, timeout=10)


@pytest.fixture
def own_redis(io_loop: tornado.ioloop.IOLoop) -> Iterator[tuple[RedisServer, Nodes]]:
    """A Redis server of the test's own (it may be stopped and started), and nodes on it."""
    server = RedisServer()
    server.start()
    nodes = Nodes(server.url)
    try:
        yield server, nodes
    finally:
        io_loop.run_sync(nodes.close, timeout=10)
        server.close()


def link_of(node: Backplane) -> RedisLink:
    assert isinstance(node.registry, RedisRegistry)
    return node.registry.link


async def _inspector(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url)


# -- efficiency and layout ------------------------------------------------------
@pytest.mark.gen_test
async def test_one_subscription_per_channel_per_node_and_no_patterns(nodes: Nodes) -> None:
    (a, _), (b, _) = [await nodes.add() for _ in range(2)]
    app = new_app()
    for _ in range(3):
        await a.bus.subscribe_channel(app, "room")
    await b.bus.subscribe_channel(app, "room")
    await a.bus.subscribe_channel(app, "only-a")
    inspector = await _inspector(nodes.url)
    try:
        topic = f"{nodes.prefix}:app:{app}:ch:room"
        counts = dict(await inspector.pubsub_numsub(topic, f"{nodes.prefix}:app:{app}:ch:only-a"))
        assert counts == {topic.encode(): 2, f"{nodes.prefix}:app:{app}:ch:only-a".encode(): 1}
        assert await inspector.pubsub_numpat() == 0
        await a.bus.unsubscribe_channel(app, "room")
        await eventually_async(
            lambda: inspector.pubsub_numsub(topic), [(topic.encode(), 1)], "unsubscribe"
        )
    finally:
        await inspector.aclose()


@pytest.mark.gen_test
async def test_every_app_key_and_topic_carries_the_app_uuid(nodes: Nodes) -> None:
    (a, _), (b, _) = [await nodes.add() for _ in range(2)]
    app = new_app()
    await a.bus.watch_app(app)
    await a.bus.subscribe_channel(app, "room")
    await a.registry.add_connection(app, "c1")
    await a.registry.add_subscription(app, "room", "c1", {"clientId": "c1"})
    await b.registry.presence_join(app, "presence-r", "c2", {"id": "u"})
    await a.history.publish(app, "room", publication_head(1, 1), b"{", history_policy())
    inspector = await _inspector(nodes.url)
    try:
        keys = {key.decode() for key in await inspector.keys(f"{nodes.prefix}:*")}
        topics = {t.decode() for t in await inspector.pubsub_channels(f"{nodes.prefix}:*")}
    finally:
        await inspector.aclose()
    node_ids = {a.node_id, b.node_id}
    p = nodes.prefix
    cluster_wide = {f"{p}:nodes", f"{p}:apps"} | {
        f"{p}:node:{n}{suffix}" for n in node_ids for suffix in ("", ":apps", ":ctl")
    }
    for name in (keys | topics) - cluster_wide:
        assert name.startswith(f"{p}:app:{app}:"), name
    assert f"{p}:app:{app}:ch:room" in topics
    assert f"{p}:app:{app}:all" in topics
    assert f"{p}:app:{app}:kick:{a.node_id}" in topics
    assert {f"{p}:app:{app}:history:room", f"{p}:app:{app}:history-meta:room"} <= keys


@pytest.mark.gen_test
async def test_a_node_shares_one_bounded_link_under_concurrency(nodes: Nodes) -> None:
    (node, _) = await nodes.add(max_connections=3)
    (other, receiver) = await nodes.add()
    assert isinstance(node.bus, RedisBus) and node.bus.link is link_of(node)
    app = new_app()
    await other.bus.subscribe_channel(app, "room")
    await asyncio.gather(
        *(node.bus.publish_channel(app, "room", b'{"n":%d}' % i) for i in range(200)),
        *(node.registry.add_connection(app, f"c{i}") for i in range(200)),
    )
    await eventually(lambda: len(receiver.payloads()) == 200, "every message")
    assert await other.registry.count_connections(app) == 200
    assert link_of(node).dropped_messages == 0 and link_of(node).busy_failures == 0
    inspector = await _inspector(nodes.url)
    try:
        clients = await inspector.client_list()
    finally:
        await inspector.aclose()
    # 400 concurrent calls went through at most 3 connections of the bounded
    # node; an unbounded pool would have opened one per call in flight.
    assert len(clients) < 20


# -- hostile data ------------------------------------------------------------------
@pytest.mark.gen_test
async def test_garbage_on_the_topics_is_dropped_and_the_node_keeps_working(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    (a, _), (b, hb) = [await nodes.add() for _ in range(2)]
    app = new_app()
    await b.bus.subscribe_channel(app, "room")
    await b.bus.watch_app(app)
    await b.registry.add_connection(app, "cb")
    p = f"{nodes.prefix}:app:{app}"
    kick_topic = f"{p}:kick:{b.node_id}"
    garbage = [
        (f"{p}:ch:room", b"no envelope at all"),
        (f"{p}:ch:room", b"\n{}"),
        (f"{p}:ch:room", b"intruder\n\xff\xfe not utf-8"),
        (f"{p}:ch:room", b"intruder\n[1, 2]"),
        (f"{p}:ch:room", b'intruder\n{"a": NaN}'),
        (f"{p}:ch:room", b"intruder\n{" + b'"a":' * 100000),
        (f"{p}:ch:room", b"intruder\n" + b"[" * 100000 + b"]" * 100000),
        (f"{p}:all", b"intruder\nnull"),
        (kick_topic, b"not json"),
        (kick_topic, b'{"clientId": 5, "reason": "x"}'),
        (kick_topic, b'["cb", "x"]'),
        (f"{p}:ch:room", b""),
        # Numbered publications with a broken envelope, or on the wrong topic.
        (f"{p}:ch:room", b'intruder 1 e\n{"type":"message"}'),
        (f"{p}:ch:room", b'intruder x e -\n{"type":"message"}'),
        (f"{p}:ch:room", b'intruder 1  -\n{"type":"message"}'),
        (f"{p}:ch:room", b'intruder 1 \xff -\n{"type":"message"}'),
        (f"{p}:all", b'intruder 1 e -\n{"type":"message"}'),
    ]
    inspector = await _inspector(nodes.url)
    try:
        for topic, data in garbage:
            assert await inspector.publish(topic, data) == 1
        # A hostile but well-formed message from outside is delivered like any other.
        await inspector.publish(f"{p}:ch:room", b'intruder\n{"type":"message"}')
    finally:
        await inspector.aclose()
    await a.bus.publish_channel(app, "room", b'{"after":1}')
    await eventually(lambda: b'{"after":1}' in hb.payloads(), "the valid message")
    assert hb.payloads() == [b'{"type":"message"}', b'{"after":1}']
    assert hb.of("kick") == []
    assert link_of(b).invalid_messages == len(garbage)
    assert link_of(b).up
    # Logged once, not once per message.
    assert len([r for r in caplog.records if "invalid messages so far" in r.getMessage()]) == 1


@pytest.mark.gen_test
async def test_corrupt_registry_entries_are_skipped(nodes: Nodes) -> None:
    (a, _), (b, hb) = [await nodes.add() for _ in range(2)]
    app = new_app()
    await a.registry.add_subscription(app, "room", "c1", {"clientId": "c1"})
    await a.registry.presence_join(app, "presence-r", "c1", {"id": "u"})
    p = f"{nodes.prefix}:app:{app}"
    inspector = await _inspector(nodes.url)
    try:
        await inspector.hset(f"{p}:ch:room:subs", "bad1", "no-space")
        await inspector.hset(f"{p}:ch:room:subs", "bad2", "node [1,2]")
        await inspector.hset(f"{p}:ch:room:subs", "bad3", b"node \xff")
        await inspector.hset(f"{p}:pr:presence-r:members", "u2", "{{{")
        await inspector.zadd(f"{p}:pr:presence-r:order", {"u2": 99})
        await inspector.sadd(f"{nodes.prefix}:node:ghost:apps", app)
        await inspector.sadd(f"{p}:node:ghost:subs", "garbage", "99:x", "x:y")
        await inspector.sadd(f"{p}:node:ghost:pres", "garbage", "3:abc")
        await inspector.sadd(f"{nodes.prefix}:nodes", "ghost")
    finally:
        await inspector.aclose()
    assert await b.registry.subscribers(app, "room") == [{"clientId": "c1"}]
    assert await b.registry.presence_members(app, "presence-r") == [{"id": "u"}]
    # The sweeper copes with a dead "node" whose index is garbage.
    assert isinstance(b.registry, RedisRegistry)
    await b.registry.sweep()
    assert hb.of("expired") == []
    assert await b.registry.subscribers(app, "room") == [{"clientId": "c1"}]
    assert link_of(b).up


# -- liveness and outages -------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_node_swept_while_alive_puts_its_entries_back(nodes: Nodes) -> None:
    # A long TTL: the timers stay quiet, the test drives the liveness refreshes.
    (a, ha), (b, _) = [await nodes.add(ttl=30) for _ in range(2)]
    app = new_app()
    await b.registry.add_connection(app, "cb")
    await b.registry.presence_join(app, "presence-r", "cb", {"id": "bob"})
    assert isinstance(a.registry, RedisRegistry)
    assert isinstance(b.registry, RedisRegistry)
    inspector = await _inspector(nodes.url)
    try:
        # As if b's loop had stalled past the TTL: its liveness key is gone.
        await inspector.delete(f"{nodes.prefix}:node:{b.node_id}")
    finally:
        await inspector.aclose()
    await a.registry.sweep()
    assert ha.of("expired") == [("expired", app, "presence-r", {"id": "bob"})]
    assert await a.registry.count_connections(app) == 0
    await b.registry.refresh_liveness()
    assert await a.registry.count_connections(app) == 1
    assert await a.registry.presence_members(app, "presence-r") == [{"id": "bob"}]


@pytest.mark.gen_test
async def test_entries_removed_during_an_outage_do_not_linger(nodes: Nodes) -> None:
    (a, _), (b, _) = [await nodes.add() for _ in range(2)]
    app = new_app()
    for client in ("c1", "c2"):
        await b.registry.add_connection(app, client)
        await b.registry.add_subscription(app, "room", client, {"clientId": client})
        await b.registry.presence_join(app, "presence-r", client, {"id": client})
    # A blip: Redis keeps its data, but b cannot reach it while c2 leaves.
    link_of(b).mark_down(ConnectionError("simulated network blip"))
    await b.registry.remove_subscription(app, "room", "c2")
    assert await b.registry.presence_leave(app, "presence-r", "c2", "c2") is True
    await b.registry.remove_connection(app, "c2")
    await eventually(lambda: link_of(b).up, "reconnection")
    assert await a.registry.count_connections(app) == 1
    assert await a.registry.subscribers(app, "room") == [{"clientId": "c1"}]
    assert await a.registry.presence_members(app, "presence-r") == [{"id": "c1"}]
    assert await a.registry.count_channels(app) == 1


@pytest.mark.gen_test(timeout=30)
async def test_redis_restart_during_traffic_resumes_without_restarting_nodes(
    own_redis: tuple[RedisServer, Nodes], caplog: pytest.LogCaptureFixture
) -> None:
    server, nodes = own_redis
    caplog.set_level(logging.WARNING, logger="fazt.realtime.backplane.redis")
    (a, _), (b, hb) = [await nodes.add(ttl=1.0) for _ in range(2)]
    app = new_app()
    await b.bus.subscribe_channel(app, "room")
    await a.registry.add_connection(app, "ca")
    await b.registry.add_connection(app, "cb")
    await b.registry.presence_join(app, "presence-r", "cb", {"id": "bob"})
    await a.bus.publish_channel(app, "room", b'{"n":"before"}')
    await eventually(lambda: len(hb.payloads()) == 1, "delivery before")

    server.stop()  # Redis dies and comes back empty (persistence is off).
    await eventually(lambda: not link_of(a).up, "a sees the outage")
    for i in range(50):
        await a.bus.publish_channel(app, "room", b'{"n":"lost %d"}' % i)
    # Local answers meanwhile, no hang, no error.
    assert await a.registry.count_connections(app) == 1
    assert await b.registry.presence_members(app, "presence-r") == [{"id": "bob"}]
    assert link_of(a).dropped_messages == 50

    server.start()
    await eventually(lambda: link_of(a).up and link_of(b).up, "reconnection", timeout=10)
    await eventually_async(lambda: a.registry.count_connections(app), 2, "re-registration")
    assert await a.registry.presence_members(app, "presence-r") == [{"id": "bob"}]
    await a.bus.publish_channel(app, "room", b'{"n":"after"}')
    await eventually(lambda: b'{"n":"after"}' in hb.payloads(), "delivery after")
    assert hb.payloads() == [b'{"n":"before"}', b'{"n":"after"}']
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for node, _ in nodes.started:
        node_id = node.node_id
        # One link per node: the bus and the registry share one outage.
        assert len([m for m in warnings if "unreachable" in m and node_id in m]) == 1
        assert len([m for m in warnings if "reachable again" in m and node_id in m]) == 1


@pytest.mark.gen_test(timeout=20)
async def test_kicks_and_counts_during_an_outage_answer_locally(
    own_redis: tuple[RedisServer, Nodes],
) -> None:
    server, nodes = own_redis
    (a, ha) = await nodes.add()
    app = new_app()
    await a.bus.watch_app(app)
    await a.registry.add_connection(app, "ca")
    await a.registry.add_subscription(app, "room", "ca", {"clientId": "ca"})
    server.stop()
    # The outage is found by the first command that fails, or by the reader.
    await a.bus.publish_channel(app, "room", b"{}")
    await eventually(lambda: not link_of(a).up, "the outage")
    assert await a.registry.connection_node(app, "ca") == a.node_id
    assert await a.registry.connection_node(app, "elsewhere") is None
    assert await a.bus.send_kick(app, a.node_id, "ca", "bye") is True
    assert await a.bus.send_kick(app, "another-node", "elsewhere", "bye") is False
    assert await a.registry.subscribers(app, "room") == [{"clientId": "ca"}]
    assert await a.registry.count_subscribers(app, "room") == 1
    assert await a.registry.count_channels(app) == 1
    assert await a.registry.count_connections() == 1
    assert await a.registry.presence_join(app, "presence-r", "ca", {"id": "u"}) is True
    assert await a.registry.presence_join(app, "presence-r", "ca2", {"id": "u"}) is False
    assert await a.registry.presence_leave(app, "presence-r", "ca", "u") is False
    assert await a.registry.presence_leave(app, "presence-r", "ca2", "u") is True
    await eventually(lambda: bool(ha.of("kick")), "local kick")


@pytest.mark.gen_test(timeout=20)
async def test_admission_during_an_outage_counts_this_nodes_connections(
    own_redis: tuple[RedisServer, Nodes],
) -> None:
    """The link's fallback is the only one: the hub admits on the registry's answer,
    which during an outage is this node's own count."""
    server, nodes = own_redis
    other, _ = await nodes.add()
    app = App(slug="chat", uuid=new_app(), root=Path("/nonexistent"), manifest={})
    for i in range(5):  # another node's connections count while Redis is up
        await other.registry.add_connection(app.uuid, f"elsewhere-{i}")
    backplane = redis_backplane(server.url, prefix=nodes.prefix, reconnect_max_seconds=0.2)
    core = RealtimeCore(backplane, TokenService(b"k" * 32), limits=Limits(maxConnectionsPerApp=7))
    await core.start()
    try:
        for _ in range(2):
            assert await core.admission.admit(app)
            await core.commands.connect(app, FakeTransport())
        assert not await core.admission.admit(app)  # 5 elsewhere + 2 here = 7
        server.stop()
        await core.backplane.bus.publish_channel(app.uuid, "x", b"{}")
        await eventually(lambda: not link_of(backplane).up, "the outage")
        assert await core.admission.admit(app)  # local count: 2 of 7
        for _ in range(5):
            await core.commands.connect(app, FakeTransport())
        assert not await core.admission.admit(app)  # local count: 7 of 7
    finally:
        await core.stop(0)


@pytest.mark.gen_test
async def test_unreachable_redis_at_start_is_a_clear_error() -> None:
    server = RedisServer()  # never started: nothing listens on its port
    node = redis_backplane(server.url, socket_timeout_seconds=0.5)
    handler = RecordingHandler()
    with pytest.raises(ConnectionError, match=f"cannot reach Redis at {server.url}"):
        await node.start(handler, handler)
    server.close()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="Redis URL"):
        redis_backplane("")
    with pytest.raises(ValueError, match="prefix"):
        redis_backplane("redis://127.0.0.1:1/0", prefix="bad prefix")
    with pytest.raises(ValueError, match="presence_ttl_seconds"):
        redis_backplane("redis://127.0.0.1:1/0", presence_ttl_seconds=0)
    with pytest.raises(ValueError, match="node id"):
        redis_backplane("redis://127.0.0.1:1/0", node_id="a b")
    with pytest.raises(ValueError, match="max_connections"):
        redis_backplane("redis://127.0.0.1:1/0", max_connections=1)
    with pytest.raises(ValueError, match="socket_timeout_seconds"):
        redis_backplane("redis://127.0.0.1:1/0", socket_timeout_seconds=0)


@pytest.mark.gen_test
async def test_a_bad_url_scheme_is_a_clear_error() -> None:
    handler = RecordingHandler()
    with pytest.raises(ValueError, match="invalid Redis URL"):
        await redis_backplane("http://127.0.0.1:1/0").start(handler, handler)


def test_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[redis\]' in the fazt repository"):
        redis_backplane("redis://127.0.0.1:6379/0")


def test_passwords_never_reach_logs() -> None:
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base=0.05, cap=2.0, rng=rng) for n in range(200)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert max(delays[:3]) <= 0.2
    assert max(delays[100:]) > 1.0


# -- history and the ordered lane ----------------------------------------------------------
@pytest.mark.gen_test(timeout=20)
async def test_history_while_redis_is_unreachable_refuses_at_once(
    own_redis: tuple[RedisServer, Nodes],
) -> None:
    server, nodes = own_redis
    (a, _) = await nodes.add()
    app = new_app()
    await a.history.publish(app, "room", publication_head(1, 1), b"{", history_policy())
    server.stop()
    await a.bus.publish_channel(app, "room", b"{}")  # finds the outage
    await eventually(lambda: not link_of(a).up, "the outage")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(HistoryUnavailable):
        await a.history.publish(app, "room", publication_head(2, 1), b"{", history_policy())
    with pytest.raises(HistoryUnavailable):
        await a.history.read(app, "room", history_policy())
    assert loop.time() - started < 0.5  # no waiting on a dead server


@pytest.mark.gen_test(timeout=20)
async def test_scripts_redis_forgot_are_sent_again(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    (a, ha) = await nodes.add()
    app = new_app()
    await a.bus.subscribe_channel(app, "room")
    await a.history.publish(app, "room", publication_head(1, 1), b"{", history_policy())
    inspector = await _inspector(nodes.url)
    try:
        await inspector.script_flush()
    finally:
        await inspector.aclose()
    position = await a.history.publish(app, "room", publication_head(2, 1), b"{", history_policy())
    assert position.offset == 2
    read = await a.history.read(app, "room", history_policy())
    assert read.position == position and len(read.publications) == 2
    await eventually(lambda: len(ha.of("publication")) == 2, "both publications")
    assert any("SCRIPT FLUSH" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test(timeout=20)
async def test_writes_over_the_lane_bound_fail_soft_and_are_counted(nodes: Nodes) -> None:
    (a, _), (b, hb) = [await nodes.add() for _ in range(2)]
    app = new_app()
    await b.bus.subscribe_channel(app, "room")
    link = link_of(a)
    link.ordered.max_pending = 10
    await asyncio.gather(*(a.bus.publish_channel(app, "room", b'{"n":%d}' % i) for i in range(100)))
    assert link.busy_failures > 0 and link.dropped_messages == link.busy_failures
    sent = 100 - link.dropped_messages
    await eventually(lambda: len(hb.payloads()) == sent, "what was queued")
    received = [int(p[5:-1]) for p in hb.payloads()]
    assert received == sorted(received)  # what went out went out in call order


@pytest.mark.gen_test(timeout=20)
async def test_a_publish_returns_without_waiting_for_redis(nodes: Nodes) -> None:
    (a, _), (b, hb) = [await nodes.add() for _ in range(2)]
    app = new_app()
    await b.bus.subscribe_channel(app, "room")
    inspector = await _inspector(nodes.url)
    try:
        # Redis runs no command for 0.5 s: a publish that waited for its reply would
        # wait that long.
        await inspector.execute_command("CLIENT", "PAUSE", 500, "ALL")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(20):
            await a.bus.publish_channel(app, "room", b'{"n":%d}' % i)
        assert loop.time() - started < 0.2
    finally:
        await inspector.aclose()
    await eventually(lambda: len(hb.payloads()) == 20, "the paused publishes")
    assert hb.payloads() == [b'{"n":%d}' % i for i in range(20)]
    assert link_of(a).dropped_messages == 0


@pytest.mark.gen_test(timeout=20)
async def test_awaited_writes_among_unawaited_ones_get_their_own_replies(nodes: Nodes) -> None:
    (a, _), (b, hb) = [await nodes.add() for _ in range(2)]
    app = new_app()
    await b.bus.subscribe_channel(app, "room")
    await b.bus.subscribe_channel(app, "hist")
    writes = []
    for i in range(50):
        writes.append(a.bus.publish_channel(app, "room", b'{"n":%d}' % i))
        head = publication_head(i, 1)
        writes.append(a.history.publish(app, "hist", head, b"{", history_policy()))
    results = await asyncio.gather(*writes)
    positions = results[1::2]
    assert [p.offset for p in positions] == list(range(1, 51))
    assert len({p.epoch for p in positions}) == 1
    await eventually(lambda: len(hb.payloads("room")) == 50, "the unawaited publishes")
    assert hb.payloads("room") == [b'{"n":%d}' % i for i in range(50)]
    await eventually(lambda: len(hb.of("publication")) == 50, "the numbered publications")
    assert [event[4].offset for event in hb.of("publication")] == list(range(1, 51))


@pytest.mark.gen_test(timeout=30)
async def test_a_lane_that_gets_no_reply_for_the_socket_timeout_is_an_outage(
    own_redis: tuple[RedisServer, Nodes],
) -> None:
    server, nodes = own_redis
    (a, _) = await nodes.add(socket_timeout_seconds=0.5)
    app = new_app()
    await a.history.publish(app, "room", publication_head(1, 1), b"{", history_policy())
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)  # Redis hangs: the socket stays open
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(HistoryUnavailable):
            await a.history.publish(app, "room", publication_head(2, 1), b"{", history_policy())
        assert loop.time() - started < 2.0
        assert not link_of(a).up
    finally:
        server.process.send_signal(signal.SIGCONT)
    await eventually(lambda: link_of(a).up, "reconnection", timeout=10)
    position = await a.history.publish(app, "room", publication_head(3, 1), b"{", history_policy())
    assert position.offset >= 2


def test_a_redis_node_runs_its_commands_inline() -> None:
    # Publishes never wait on Redis; calls that do move their command into a Task.
    assert redis_backplane("redis://127.0.0.1:1/0").runs_inline


@pytest.mark.gen_test(timeout=20)
async def test_a_push_redis_sends_unasked_on_the_lane_is_not_taken_for_a_reply(
    nodes: Nodes,
) -> None:
    (a, _) = await nodes.add()
    lane = link_of(a).ordered
    if await lane.command("HELLO", fallback=None) is None:
        pytest.skip("the lane's connection speaks RESP2 here (no pushes)")
    app = new_app()
    key = f"{nodes.prefix}:tracked"
    assert await lane.command("CLIENT", "TRACKING", "ON") == b"OK"
    await lane.command("GET", key)  # tracked: a change of the key sends an invalidation push
    inspector = await _inspector(nodes.url)
    try:
        await inspector.set(key, "changed")
    finally:
        await inspector.aclose()
    await asyncio.sleep(0.1)  # the push arrives while no write waits
    positions = [
        await a.history.publish(app, "room", publication_head(i, 1), b"{", history_policy())
        for i in range(3)
    ]
    assert [p.offset for p in positions] == [1, 2, 3]
    assert link_of(a).up and link_of(a).outages == 0
