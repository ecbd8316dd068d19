"""Real multi-process cluster tests: ``fazt serve`` processes on one test-started Redis.

Each test starts its own ``redis-server`` (free port, persistence off) and its
own kernels (``FaztProcess``), and stops them all by PID. Kernels share the
apps folder but not their data folders: they agree on the app uuid through
``app.json`` ``"uuid"`` and on tokens through the configured JWT secret.

Exactly-once is checked with sentinels: after the message under test, another
message is sent through a different node, and each client must read exactly
``[message, sentinel]``; a duplicate would come between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient

from fazt.kernel.tokens import TokenService
from tests.harness import FaztProcess, make_app
from tests.realtime.backplane.redis_server import RedisServer, needs_redis_server
from tests.realtime.wsclient import Client, open_client, upgrade_status

pytestmark = [pytest.mark.redis, needs_redis_server]

SECRET = "cluster-test-secret-0123456789abcdef"
APP_UUID = "app_clusterTest0001"
PRESENCE_TTL = 1.0

API_FILES = {
    "api/count.js": """
module.exports = async (req) => {
  const n = req.query.channel ? await fazt.realtime.count(req.query.channel)
                              : await fazt.realtime.count();
  return { json: { count: n } };
};
""",
    "api/broadcast.js": """
module.exports = async (req) => {
  await fazt.realtime.broadcast(req.query.channel, { n: req.query.n });
  return { json: { ok: true } };
};
""",
    "api/kick.js": """
module.exports = async (req) => {
  return { json: { kicked: await fazt.realtime.kick(req.query.id, 'bye') } };
};
""",
}


class ClusterRig:
    """One Redis and the kernels started on it; everything is stopped by ``close``.

    The app ``chat`` gets ``channels`` as its rules and ``files`` besides the
    ``api/`` handlers every cluster test uses.
    """

    def __init__(
        self,
        tmp_path: Path,
        channels: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.redis = RedisServer()
        self.redis.start()
        self.apps_dir = tmp_path / "apps"
        rules = channels if channels is not None else {"room": {"publish": True}}
        make_app(
            self.apps_dir,
            "chat",
            {"uuid": APP_UUID, "realtime": {"channels": rules}},
            {**API_FILES, **(files or {})},
        )
        self.nodes: list[FaztProcess] = []
        self.clients: list[Client] = []
        self.tokens = TokenService(SECRET.encode())
        #: Extra keys for the "realtime" section of every node's config.
        self.realtime: dict[str, Any] = {}

    def config(self, redis: bool = True) -> dict[str, Any]:
        config: dict[str, Any] = {
            "jwt": {"secret": SECRET},
            "realtime": {
                "presenceTtlSeconds": PRESENCE_TTL,
                "shutdownGraceSeconds": 0.2,
                **self.realtime,
            },
        }
        if redis:
            config["redis"] = self.redis.url
        return config

    def start_node(self, extra_args: tuple[str, ...] = ()) -> FaztProcess:
        node = FaztProcess(
            self.apps_dir,
            data_dir=self.tmp_path / f"node{len(self.nodes)}",
            config=self.config(),
            extra_args=extra_args,
        )
        self.nodes.append(node)
        node.start(timeout=30)
        return node

    async def client(self, node: FaztProcess, user: str | None = None) -> Client:
        token = self.tokens.issue(user, name=user.title()) if user else None
        client = await open_client(node.ws_url("chat"), token)
        self.clients.append(client)
        return client

    async def api(self, node: FaztProcess, name: str, **query: str) -> Any:
        url = node.url("chat", f"/api/{name}") + ("?" + urlencode(query) if query else "")
        response = await AsyncHTTPClient().fetch(url, request_timeout=10)
        return json.loads(response.body)

    async def close_clients(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ClusterRig]:
    rig = ClusterRig(tmp_path)
    try:
        yield rig
    finally:
        rig.close()


async def eventually_equal(probe: Any, expected: Any, what: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await probe()) != expected:
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value!r}")
        await asyncio.sleep(0.05)


def data_of(messages: list[dict[str, Any]]) -> list[Any]:
    return [message.get("data") for message in messages]


@pytest.mark.gen_test(timeout=60)
async def test_cross_node_delivery_is_exactly_once(rig: ClusterRig) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        a = await rig.client(one)
        b = await rig.client(two)
        c = await rig.client(two)
        for client in (a, b, c):
            await client.subscribe("room")

        # A client publish on node one reaches both subscribers on node two,
        # and not its sender.
        await a.send({"type": "message", "channel": "room", "data": {"n": "from-a"}})
        # The sentinel goes out once the message has crossed (a client's send
        # returns before node one has published, so earlier could overtake it).
        assert data_of(await b.recv_many(1)) == [{"n": "from-a"}]
        await rig.api(two, "broadcast", channel="room", n="sentinel")
        assert data_of(await b.recv_many(1)) == [{"n": "sentinel"}]
        assert data_of(await c.recv_many(2)) == [{"n": "from-a"}, {"n": "sentinel"}]
        assert data_of(await a.recv_many(1)) == [{"n": "sentinel"}]

        # A server broadcast on node two reaches node one's subscriber once.
        await rig.api(two, "broadcast", channel="room", n="api")
        assert data_of(await a.recv_many(1)) == [{"n": "api"}]
        await rig.api(one, "broadcast", channel="room", n="sentinel2")
        assert data_of(await a.recv_many(1)) == [{"n": "sentinel2"}]
        assert data_of(await b.recv_many(2)) == [{"n": "api"}, {"n": "sentinel2"}]

        # Counts and kicks are cluster-wide.
        assert await rig.api(one, "count", channel="room") == {"count": 3}
        assert await rig.api(one, "count") == {"count": 3}
        assert await rig.api(one, "kick", id=c.client_id) == {"kicked": True}
        code, seen = await c.expect_close()
        assert code == 4003
        assert {"type": "kicked", "reason": "bye"} in seen
        assert await rig.api(one, "kick", id="no-such-client") == {"kicked": False}
        await eventually_equal(lambda: rig.api(one, "count"), {"count": 2}, "count after kick")
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=60)
async def test_connection_limit_holds_cluster_wide(rig: ClusterRig) -> None:
    rig.realtime = {"limits": {"maxConnectionsPerApp": 3}}
    one, two = rig.start_node(), rig.start_node()
    try:
        await rig.client(one)
        await rig.client(one)
        await rig.client(two)
        # Each node holds fewer than 3, but the app has 3 across the cluster.
        assert await upgrade_status(one.ws_url("chat")) == 503
        assert await upgrade_status(two.ws_url("chat")) == 503
        await rig.clients.pop().close()
        await eventually_equal(lambda: rig.api(one, "count"), {"count": 2}, "count after close")
        assert await upgrade_status(one.ws_url("chat")) == 101
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=60)
async def test_presence_is_one_member_per_user_across_nodes(rig: ClusterRig) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        alice1 = await rig.client(one, "alice")
        await alice1.subscribe("presence-room")
        bob = await rig.client(two, "bob")
        reply = await bob.subscribe("presence-room")
        assert sorted(member["id"] for member in reply["members"]) == ["alice", "bob"]
        joined = await alice1.recv()
        assert (joined["event"], joined["client"]["id"]) == ("join", "bob")

        # alice's second tab, on the other node, is not a second member.
        alice2 = await rig.client(two, "alice")
        reply = await alice2.subscribe("presence-room")
        assert sorted(member["id"] for member in reply["members"]) == ["alice", "bob"]
        carol = await rig.client(one, "carol")
        await carol.subscribe("presence-room")
        event = await bob.recv()
        assert (event["event"], event["client"]["id"]) == ("join", "carol"), event

        # Closing one tab is no leave; closing the last one is.
        await alice1.close()
        await carol.close()
        event = await bob.recv()
        assert (event["event"], event["client"]["id"]) == ("leave", "carol"), event
        await alice2.close()
        event = await bob.recv()
        assert (event["event"], event["client"]["id"]) == ("leave", "alice"), event
        members = await bob.request({"type": "members", "channel": "presence-room"})
        assert [member["id"] for member in members["members"]] == ["bob"]
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=60)
async def test_kill_9_of_a_node_makes_its_users_leave_within_the_ttl(rig: ClusterRig) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        bob = await rig.client(one, "bob")
        await bob.subscribe("presence-room")
        alice = await rig.client(two, "alice")
        await alice.subscribe("presence-room")
        dave = await rig.client(two, "dave")
        await dave.subscribe("presence-room")
        assert [(await bob.recv())["client"]["id"] for _ in range(2)] == ["alice", "dave"]
        assert await rig.api(one, "count", channel="presence-room") == {"count": 3}

        two.kill()  # SIGKILL: no goodbye, its registry entries stay until the TTL
        started = time.monotonic()
        events = await bob.recv_many(2, timeout=PRESENCE_TTL * 4 + 5)
        assert sorted((e["event"], e["client"]["id"]) for e in events) == [
            ("leave", "alice"),
            ("leave", "dave"),
        ]
        # Bounded by the TTL plus one sweep period (a third of it), with slack for CI.
        assert time.monotonic() - started < PRESENCE_TTL * 4 + 5
        await eventually_equal(
            lambda: rig.api(one, "count", channel="presence-room"), {"count": 1}, "count drop"
        )
        assert await rig.api(one, "count") == {"count": 1}
        members = await bob.request({"type": "members", "channel": "presence-room"})
        assert [member["id"] for member in members["members"]] == ["bob"]
    finally:
        await rig.close_clients()


@pytest.mark.gen_test(timeout=90)
async def test_redis_restart_during_traffic_resumes_without_restarting_kernels(
    rig: ClusterRig,
) -> None:
    one, two = rig.start_node(), rig.start_node()
    try:
        a = await rig.client(one)
        b = await rig.client(two)
        await a.subscribe("room")
        await b.subscribe("room")
        await a.send({"type": "message", "channel": "room", "data": {"n": "before"}})
        assert data_of(await b.recv_many(1)) == [{"n": "before"}]

        rig.redis.stop()
        # Local clients are still served while Redis is away.
        local = await rig.client(one)
        await local.subscribe("room")
        await a.send({"type": "message", "channel": "room", "data": {"n": "during"}})
        assert data_of(await local.recv_many(1)) == [{"n": "during"}]
        rig.redis.start()

        # Publish until node two gets a message again (reconnection uses backoff).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        received: list[Any] = []
        n = 0
        while not received:
            assert loop.time() < deadline, "cross-node delivery did not resume"
            n += 1
            await a.send({"type": "message", "channel": "room", "data": {"n": n}})
            with contextlib.suppress(asyncio.TimeoutError):
                received = data_of(await b.recv_many(1, timeout=0.5))
        assert received[0] != {"n": "during"}  # lost during the outage, as documented
        for node in (one, two):
            assert node.returncode is None
        # The registry came back too: counts are cluster-wide again.
        await eventually_equal(lambda: rig.api(two, "count", channel="room"), {"count": 3}, "count")
    finally:
        await rig.close_clients()
    for node in (one, two):
        log = node.log_text()
        assert log.count("is unreachable") == 1, log
        assert log.count("is reachable again") == 1, log
        assert "Traceback" not in log


@pytest.mark.gen_test(timeout=60)
async def test_workers_share_realtime_through_redis(rig: ClusterRig) -> None:
    node = rig.start_node(extra_args=("--workers", "2"))
    try:
        clients = [await rig.client(node) for _ in range(8)]
        for client in clients:
            await client.subscribe("room")
        await rig.api(node, "broadcast", channel="room", n="1")
        await rig.api(node, "broadcast", channel="room", n="2")
        for client in clients:
            assert data_of(await client.recv_many(2)) == [{"n": "1"}, {"n": "2"}]
        await eventually_equal(lambda: rig.api(node, "count"), {"count": 8}, "count")
    finally:
        await rig.close_clients()


def test_workers_refuse_to_start_without_redis(rig: ClusterRig) -> None:
    node = FaztProcess(
        rig.apps_dir,
        data_dir=rig.tmp_path / "lonely",
        config=rig.config(redis=False),
        extra_args=["--workers", "2"],
    )
    with pytest.raises(RuntimeError, match="fazt exited with 2"):
        node.start(timeout=30)
    assert "--workers 2 needs a Redis URL" in node.log_text()
    assert "Traceback" not in node.log_text()
