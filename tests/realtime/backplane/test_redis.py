"""The conformance suite on the Redis backplane, plus what only Redis has.

Each test module run starts its own ``redis-server`` on a free port (persistence
off) and kills it by PID at the end; every test uses its own key prefix. The
outage tests start and kill a server of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
import tornado.ioloop

from fazt.realtime.backplane.base import Backplane
from fazt.realtime.backplane.redis import RedisBackplane, backoff_delay, redact_url
from tests.realtime.backplane.conformance import (
    BackplaneConformance,
    Cluster,
    Node,
    RecordingHandler,
    eventually,
    eventually_async,
    new_app,
    run_close,
)
from tests.realtime.backplane.redis_server import RedisServer, needs_redis_server

pytestmark = [pytest.mark.redis, needs_redis_server]

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


class RedisCluster(Cluster):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.prefix = f"t{next(_prefixes)}"

    def make(self, ttl: float) -> Backplane:
        return RedisBackplane(
            self.url, presence_ttl_seconds=ttl, prefix=self.prefix, reconnect_max_seconds=0.2
        )

    async def kill(self, node: Node) -> None:
        assert isinstance(node.backplane, RedisBackplane)
        await node.backplane.crash()


class TestRedisBackplane(BackplaneConformance):
    @pytest.fixture
    def cluster(
        self, io_loop: tornado.ioloop.IOLoop, redis_server: RedisServer
    ) -> Iterator[Cluster]:
        cluster = RedisCluster(redis_server.url)
        yield cluster
        run_close(io_loop, cluster)


@pytest.fixture
def cluster(io_loop: tornado.ioloop.IOLoop, redis_server: RedisServer) -> Iterator[RedisCluster]:
    cluster = RedisCluster(redis_server.url)
    yield cluster
    run_close(io_loop, cluster)


async def _inspector(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url)


# -- efficiency and layout ------------------------------------------------------
@pytest.mark.gen_test
async def test_one_subscription_per_channel_per_node_and_no_patterns(
    cluster: RedisCluster,
) -> None:
    a, b = [await cluster.add_node() for _ in range(2)]
    app = new_app()
    for _ in range(3):
        await a.backplane.subscribe_channel(app, "room")
    await b.backplane.subscribe_channel(app, "room")
    await a.backplane.subscribe_channel(app, "only-a")
    inspector = await _inspector(cluster.url)
    try:
        topic = f"{cluster.prefix}:app:{app}:ch:room"
        counts = dict(await inspector.pubsub_numsub(topic, f"{cluster.prefix}:app:{app}:ch:only-a"))
        assert counts == {topic.encode(): 2, f"{cluster.prefix}:app:{app}:ch:only-a".encode(): 1}
        assert await inspector.pubsub_numpat() == 0
        await a.backplane.unsubscribe_channel(app, "room")
        await eventually_async(
            lambda: inspector.pubsub_numsub(topic), [(topic.encode(), 1)], "unsubscribe"
        )
    finally:
        await inspector.aclose()


@pytest.mark.gen_test
async def test_every_app_key_and_topic_carries_the_app_uuid(cluster: RedisCluster) -> None:
    a, b = [await cluster.add_node() for _ in range(2)]
    app = new_app()
    await a.backplane.watch_app(app)
    await a.backplane.subscribe_channel(app, "room")
    await a.backplane.add_connection(app, "c1")
    await a.backplane.add_subscription(app, "room", "c1", {"clientId": "c1"})
    await b.backplane.presence_join(app, "presence-r", "c2", {"id": "u"})
    inspector = await _inspector(cluster.url)
    try:
        keys = {key.decode() for key in await inspector.keys(f"{cluster.prefix}:*")}
        topics = {t.decode() for t in await inspector.pubsub_channels(f"{cluster.prefix}:*")}
    finally:
        await inspector.aclose()
    node_ids = {a.backplane.node_id, b.backplane.node_id}
    p = cluster.prefix
    cluster_wide = {f"{p}:nodes", f"{p}:apps"} | {
        f"{p}:node:{n}{suffix}" for n in node_ids for suffix in ("", ":apps", ":ctl")
    }
    for name in (keys | topics) - cluster_wide:
        assert name.startswith(f"{p}:app:{app}:"), name
    assert f"{p}:app:{app}:ch:room" in topics
    assert f"{p}:app:{app}:all" in topics
    assert f"{p}:app:{app}:kick:{a.backplane.node_id}" in topics


@pytest.mark.gen_test
async def test_connections_to_redis_are_bounded_under_concurrency(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{next(_prefixes)}"
    node = RedisBackplane(redis_server.url, prefix=prefix, max_connections=3)
    other = RedisBackplane(redis_server.url, prefix=prefix)
    receiver = RecordingHandler()
    await node.start(RecordingHandler())
    await other.start(receiver)
    try:
        app = new_app()
        await other.subscribe_channel(app, "room")
        await asyncio.gather(
            *(node.publish_channel(app, "room", b'{"n":%d}' % i) for i in range(200)),
            *(node.add_connection(app, f"c{i}") for i in range(200)),
        )
        await eventually(lambda: len(receiver.payloads()) == 200, "every message")
        assert await other.count_connections(app) == 200
        assert node.dropped_messages == 0 and node.busy_failures == 0
        inspector = await _inspector(redis_server.url)
        try:
            clients = await inspector.client_list()
        finally:
            await inspector.aclose()
        # 400 concurrent calls went through at most 3 connections of the bounded
        # node; an unbounded pool would have opened one per call in flight.
        assert len(clients) < 20
    finally:
        await node.stop()
        await other.stop()


# -- hostile data ------------------------------------------------------------------
@pytest.mark.gen_test
async def test_garbage_on_the_topics_is_dropped_and_the_node_keeps_working(
    cluster: RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = [await cluster.add_node() for _ in range(2)]
    app = new_app()
    await b.backplane.subscribe_channel(app, "room")
    await b.backplane.watch_app(app)
    await b.backplane.add_connection(app, "cb")
    assert isinstance(b.backplane, RedisBackplane)
    p = f"{cluster.prefix}:app:{app}"
    kick_topic = f"{p}:kick:{b.backplane.node_id}"
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
    ]
    inspector = await _inspector(cluster.url)
    try:
        for topic, data in garbage:
            assert await inspector.publish(topic, data) == 1
        # A hostile but well-formed message from outside is delivered like any other.
        await inspector.publish(f"{p}:ch:room", b'intruder\n{"type":"message"}')
    finally:
        await inspector.aclose()
    await a.backplane.publish_channel(app, "room", b'{"after":1}')
    await eventually(lambda: b'{"after":1}' in b.handler.payloads(), "the valid message")
    assert b.handler.payloads() == [b'{"type":"message"}', b'{"after":1}']
    assert b.handler.of("kick") == []
    assert b.backplane.invalid_messages == len(garbage)
    assert b.backplane.connected
    # Logged once, not once per message.
    assert len([r for r in caplog.records if "invalid messages so far" in r.getMessage()]) == 1


@pytest.mark.gen_test
async def test_corrupt_registry_entries_are_skipped(cluster: RedisCluster) -> None:
    a, b = [await cluster.add_node() for _ in range(2)]
    app = new_app()
    await a.backplane.add_subscription(app, "room", "c1", {"clientId": "c1"})
    await a.backplane.presence_join(app, "presence-r", "c1", {"id": "u"})
    p = f"{cluster.prefix}:app:{app}"
    inspector = await _inspector(cluster.url)
    try:
        await inspector.hset(f"{p}:ch:room:subs", "bad1", "no-space")
        await inspector.hset(f"{p}:ch:room:subs", "bad2", "node [1,2]")
        await inspector.hset(f"{p}:ch:room:subs", "bad3", b"node \xff")
        await inspector.hset(f"{p}:pr:presence-r:members", "u2", "{{{")
        await inspector.zadd(f"{p}:pr:presence-r:order", {"u2": 99})
        await inspector.sadd(f"{cluster.prefix}:node:ghost:apps", app)
        await inspector.sadd(f"{p}:node:ghost:subs", "garbage", "99:x", "x:y")
        await inspector.sadd(f"{p}:node:ghost:pres", "garbage", "3:abc")
        await inspector.sadd(f"{cluster.prefix}:nodes", "ghost")
    finally:
        await inspector.aclose()
    assert await b.backplane.subscribers(app, "room") == [{"clientId": "c1"}]
    assert await b.backplane.presence_members(app, "presence-r") == [{"id": "u"}]
    # The sweeper copes with a dead "node" whose index is garbage.
    assert isinstance(b.backplane, RedisBackplane)
    await b.backplane.sweep()
    assert b.handler.of("expired") == []
    assert await b.backplane.subscribers(app, "room") == [{"clientId": "c1"}]
    assert b.backplane.connected


# -- life cycle and outages -------------------------------------------------------------
@pytest.mark.gen_test
async def test_a_node_swept_while_alive_puts_its_entries_back(cluster: RedisCluster) -> None:
    # A long TTL: the timers stay quiet, the test drives the heartbeats.
    a, b = [await cluster.add_node(ttl=30) for _ in range(2)]
    app = new_app()
    await b.backplane.add_connection(app, "cb")
    await b.backplane.presence_join(app, "presence-r", "cb", {"id": "bob"})
    assert isinstance(a.backplane, RedisBackplane)
    assert isinstance(b.backplane, RedisBackplane)
    inspector = await _inspector(cluster.url)
    try:
        # As if b's loop had stalled past the TTL: its liveness key is gone.
        await inspector.delete(f"{cluster.prefix}:node:{b.backplane.node_id}")
    finally:
        await inspector.aclose()
    await a.backplane.sweep()
    assert a.handler.of("expired") == [("expired", app, "presence-r", {"id": "bob"})]
    assert await a.backplane.count_connections(app) == 0
    await b.backplane.heartbeat()
    assert await a.backplane.count_connections(app) == 1
    assert await a.backplane.presence_members(app, "presence-r") == [{"id": "bob"}]


@pytest.mark.gen_test
async def test_entries_removed_during_an_outage_do_not_linger(cluster: RedisCluster) -> None:
    a, b = [await cluster.add_node() for _ in range(2)]
    app = new_app()
    for client in ("c1", "c2"):
        await b.backplane.add_connection(app, client)
        await b.backplane.add_subscription(app, "room", client, {"clientId": client})
        await b.backplane.presence_join(app, "presence-r", client, {"id": client})
    assert isinstance(b.backplane, RedisBackplane)
    # A blip: Redis keeps its data, but b cannot reach it while c2 leaves.
    b.backplane._mark_down(ConnectionError("simulated network blip"))
    await b.backplane.remove_subscription(app, "room", "c2")
    assert await b.backplane.presence_leave(app, "presence-r", "c2", "c2") is True
    await b.backplane.remove_connection(app, "c2")
    await eventually(lambda: b.backplane.connected, "reconnection")
    assert await a.backplane.count_connections(app) == 1
    assert await a.backplane.subscribers(app, "room") == [{"clientId": "c1"}]
    assert await a.backplane.presence_members(app, "presence-r") == [{"id": "c1"}]
    assert await a.backplane.count_channels(app) == 1


@pytest.mark.gen_test(timeout=30)
async def test_redis_restart_during_traffic_resumes_without_restarting_nodes(
    io_loop: tornado.ioloop.IOLoop, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer()
    server.start()
    cluster = RedisCluster(server.url)
    try:
        caplog.set_level(logging.WARNING, logger="fazt.realtime.backplane.redis")
        a, b = [await cluster.add_node(ttl=1.0) for _ in range(2)]
        app = new_app()
        await b.backplane.subscribe_channel(app, "room")
        await a.backplane.add_connection(app, "ca")
        await b.backplane.add_connection(app, "cb")
        await b.backplane.presence_join(app, "presence-r", "cb", {"id": "bob"})
        await a.backplane.publish_channel(app, "room", b'{"n":"before"}')
        await eventually(lambda: len(b.handler.payloads()) == 1, "delivery before")
        assert isinstance(a.backplane, RedisBackplane)
        assert isinstance(b.backplane, RedisBackplane)

        server.stop()  # Redis dies and comes back empty (persistence is off).
        await eventually(lambda: not a.backplane.connected, "a sees the outage")
        for i in range(50):
            await a.backplane.publish_channel(app, "room", b'{"n":"lost %d"}' % i)
        # Local answers meanwhile, no hang, no error.
        assert await a.backplane.count_connections(app) == 1
        assert await b.backplane.presence_members(app, "presence-r") == [{"id": "bob"}]
        assert a.backplane.dropped_messages == 50

        server.start()
        await eventually(
            lambda: a.backplane.connected and b.backplane.connected, "reconnection", timeout=10
        )
        await eventually_async(lambda: a.backplane.count_connections(app), 2, "re-registration")
        assert await a.backplane.presence_members(app, "presence-r") == [{"id": "bob"}]
        await a.backplane.publish_channel(app, "room", b'{"n":"after"}')
        await eventually(lambda: b'{"n":"after"}' in b.handler.payloads(), "delivery after")
        assert b.handler.payloads() == [b'{"n":"before"}', b'{"n":"after"}']
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        for node in (a, b):
            node_id = node.backplane.node_id
            assert len([m for m in warnings if "unreachable" in m and node_id in m]) == 1
            assert len([m for m in warnings if "reachable again" in m and node_id in m]) == 1
    finally:
        await cluster.close()
        server.close()


@pytest.mark.gen_test(timeout=20)
async def test_kick_and_counts_during_an_outage_answer_locally(
    io_loop: tornado.ioloop.IOLoop,
) -> None:
    server = RedisServer()
    server.start()
    cluster = RedisCluster(server.url)
    try:
        (a,) = [await cluster.add_node()]
        app = new_app()
        await a.backplane.add_connection(app, "ca")
        await a.backplane.add_subscription(app, "room", "ca", {"clientId": "ca"})
        assert isinstance(a.backplane, RedisBackplane)
        server.stop()
        # The outage is found by the first command that fails, or by the reader.
        await a.backplane.publish_channel(app, "room", b"{}")
        await eventually(lambda: not a.backplane.connected, "the outage")
        assert await a.backplane.send_kick(app, "ca", "bye") is True
        assert await a.backplane.send_kick(app, "elsewhere", "bye") is False
        assert await a.backplane.subscribers(app, "room") == [{"clientId": "ca"}]
        assert await a.backplane.count_subscribers(app, "room") == 1
        assert await a.backplane.count_channels(app) == 1
        assert await a.backplane.count_connections() == 1
        assert await a.backplane.presence_join(app, "presence-r", "ca", {"id": "u"}) is True
        assert await a.backplane.presence_join(app, "presence-r", "ca2", {"id": "u"}) is False
        assert await a.backplane.presence_leave(app, "presence-r", "ca", "u") is False
        assert await a.backplane.presence_leave(app, "presence-r", "ca2", "u") is True
        await eventually(lambda: bool(a.handler.of("kick")), "local kick")
    finally:
        await cluster.close()
        server.close()


@pytest.mark.gen_test
async def test_unreachable_redis_at_start_is_a_clear_error() -> None:
    server = RedisServer()  # never started: nothing listens on its port
    node = RedisBackplane(server.url, socket_timeout_seconds=0.5)
    with pytest.raises(ConnectionError, match=f"cannot reach Redis at {server.url}"):
        await node.start(_Silent())
    server.close()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="Redis URL"):
        RedisBackplane("")
    with pytest.raises(ValueError, match="prefix"):
        RedisBackplane("redis://127.0.0.1:1/0", prefix="bad prefix")
    with pytest.raises(ValueError, match="presence_ttl_seconds"):
        RedisBackplane("redis://127.0.0.1:1/0", presence_ttl_seconds=0)
    with pytest.raises(ValueError, match="node id"):
        RedisBackplane("redis://127.0.0.1:1/0", node_id="a b")
    with pytest.raises(ValueError, match="max_connections"):
        RedisBackplane("redis://127.0.0.1:1/0", max_connections=1)


@pytest.mark.gen_test
async def test_a_bad_url_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="invalid Redis URL"):
        await RedisBackplane("http://127.0.0.1:1/0").start(_Silent())


def test_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[redis\]' in the fazt repository"):
        RedisBackplane("redis://127.0.0.1:6379/0")


def test_passwords_never_reach_logs() -> None:
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_backoff_is_full_jitter_and_capped() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, base=0.05, cap=2.0, rng=rng) for n in range(200)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert max(delays[:3]) <= 0.2
    assert max(delays[100:]) > 1.0


class _Silent:
    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None: ...
    def deliver_app(self, app_uuid: str, payload: bytes) -> None: ...
    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None: ...
    def presence_expired(self, app_uuid: str, channel: str, member: object) -> None: ...
