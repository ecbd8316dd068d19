"""Hooks on history channels, with real JS on a real engine (no sockets).

``onPublish`` decides before a message is numbered: a refused message never
takes an offset, a rewritten one is kept as rewritten, and one connection's
messages get their offsets in the order it sent them, whatever order their
hooks finish in. ``onSubscribe`` decides before a recovering subscribe reads
the store. What ``onJoin`` broadcasts is a publication like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop

from fazt.realtime import hook_verdicts
from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.history import HistoryUnavailable, StreamPosition
from fazt.realtime.backplane.history_memory import MemoryHistoryStore
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.backplane.registry_memory import MemoryRegistry
from fazt.realtime.hooks import HookSettings
from fazt.realtime.session import Session
from tests.realtime.backplane.support import eventually
from tests.realtime.fakes import FakeTransport
from tests.realtime.hooked import HookedNode, hooked_app, hooked_node

pytestmark = pytest.mark.gen_test(timeout=30)

HOOKS = """
exports.onPublish = async ({ user, data }) => {
  if (data.delay) await fazt.test.nap(data.delay);
  if (data.refuse) return { reject: 'not this one' };
  return { data: { n: data.n, by: user ? user.id : null } };
};

exports.onSubscribe = ({ user }) => user !== null && user.id !== 'mallory';

exports.onJoin = ({ channel, member }) =>
  fazt.realtime.broadcast(channel.slice('presence-'.length), { system: member.id + ' joined' });
"""

HISTORY = {"size": 50, "ttlSeconds": 60}
CHANNELS: dict[str, dict[str, Any]] = {
    "room-*": {"publish": True, "hooks": ["publish"], "history": HISTORY},
    "team": {"auth": True, "hooks": ["subscribe"], "history": HISTORY},
    "presence-room-*": {"hooks": ["presence"]},
}


@pytest.fixture
def node(io_loop: tornado.ioloop.IOLoop) -> Iterator[HookedNode]:
    settings = HookSettings(time_limit_seconds=2, vacated_delay_seconds=0.2)
    node = io_loop.run_sync(lambda: hooked_node(settings))
    yield node
    io_loop.run_sync(node.close, timeout=10)


async def frames(transport: FakeTransport, count: int) -> list[dict[str, Any]]:
    await eventually(lambda: len(transport.frames) >= count, f"{count} frames")
    return transport.take()


async def subscribed(
    node: HookedNode, session: Session, transport: FakeTransport, channel: str, **extra: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``subscribed``, and the recovered messages that came right behind it."""
    await node.world.send(session, {"type": "subscribe", "channel": channel, **extra})
    reply, *recovered = await frames(transport, 1)
    assert reply["type"] == "subscribed", reply
    return reply, recovered


async def test_only_what_the_hook_let_through_is_numbered_in_the_order_it_was_sent(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, HOOKS, CHANNELS)
    sender, ts = await node.client(app, "ann")
    reader, tr = await node.client(app, "bob")
    await subscribed(node, sender, ts, "room-1")
    start, _ = await subscribed(node, reader, tr, "room-1")
    assert start["offset"] == 0
    # The slow hooks finish last; message 3 is refused.
    delays = [0.3, 0, 0.15, 0, 0.05, 0]
    for n, delay in enumerate(delays):
        data = {"n": n, "delay": delay, "refuse": n == 3}
        await node.world.send(sender, {"type": "message", "channel": "room-1", "data": data})

    received = await frames(tr, 5)
    assert [(m["data"], m["offset"]) for m in received] == [
        ({"n": 0, "by": "ann"}, 1),
        ({"n": 1, "by": "ann"}, 2),
        ({"n": 2, "by": "ann"}, 3),
        ({"n": 4, "by": "ann"}, 4),
        ({"n": 5, "by": "ann"}, 5),
    ]
    assert ts.take() == [
        {"type": "error", "code": "rejected", "error": "not this one", "channel": "room-1"}
    ]
    # The store holds the rewritten messages, gapless, with their sender.
    await node.world.send(reader, {"type": "history", "channel": "room-1"})
    [history] = await frames(tr, 1)
    assert [(p["data"]["n"], p["offset"], p["from"]) for p in history["publications"]] == [
        (0, 1, sender.client_id),
        (1, 2, sender.client_id),
        (2, 3, sender.client_id),
        (4, 4, sender.client_id),
        (5, 5, sender.client_id),
    ]
    assert (history["offset"], history["epoch"]) == (5, start["epoch"])
    # A server broadcast (never vetted) takes the next offset.
    position = await node.world.core.api(app).broadcast("room-1", "server")
    assert position == {"offset": 6, "epoch": start["epoch"]}


async def test_a_system_line_posted_by_on_join_is_kept_and_recovered(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, HOOKS, CHANNELS)
    watcher, tw = await node.client(app, "bob")
    start, _ = await subscribed(node, watcher, tw, "room-1")
    carol, tc = await node.client(app, "carol")
    await subscribed(node, carol, tc, "presence-room-1")

    [line] = await frames(tw, 1)
    assert (line["data"], line["offset"]) == ({"system": "carol joined"}, 1)
    # A client that saw nothing of it recovers it from the position before it.
    late, tl = await node.client(app, "dave")
    since = {"offset": start["offset"], "epoch": start["epoch"]}
    reply, recovered = await subscribed(node, late, tl, "room-1", since=since)
    assert reply["recovered"] is True
    assert [(m["data"], m["offset"]) for m in recovered] == [({"system": "carol joined"}, 1)]


async def test_on_subscribe_decides_before_a_recovering_subscribe_reads_the_store(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, HOOKS, CHANNELS)
    api = node.world.core.api(app)
    first = await api.broadcast("team", "plan A")
    assert first is not None
    await api.broadcast("team", "plan B")
    since = {"offset": 0, "epoch": first["epoch"]}

    mallory, tm = await node.client(app, "mallory")
    await node.world.send(mallory, {"type": "subscribe", "channel": "team", "since": since})
    assert await frames(tm, 1) == [
        {
            "type": "error",
            "code": "forbidden",
            "error": hook_verdicts.SUBSCRIBE_REFUSED,
            "channel": "team",
        }
    ]
    alice, ta = await node.client(app, "alice")
    reply, recovered = await subscribed(node, alice, ta, "team", since=since)
    assert (reply["recovered"], reply["offset"]) == (True, 2)
    assert [(m["data"], m["offset"]) for m in recovered] == [("plan A", 1), ("plan B", 2)]
    assert tm.take() == []


async def test_a_message_the_hook_let_through_but_the_store_cannot_take_is_refused(
    tmp_path: Path,
) -> None:
    class DownStore(MemoryHistoryStore):
        async def publish(self, *args: Any, **kwargs: Any) -> StreamPosition:
            raise HistoryUnavailable("down")

    bus = MemoryBus(node_id="n1")
    backplane = Backplane(bus, MemoryRegistry(node_id="n1"), DownStore(bus))
    node = await hooked_node(HookSettings(time_limit_seconds=2), backplane=backplane)
    try:
        app = hooked_app(tmp_path, HOOKS, CHANNELS)
        sender, ts = await node.client(app, "ann")
        reader, tr = await node.client(app, "bob")
        await subscribed(node, sender, ts, "room-1")
        await subscribed(node, reader, tr, "room-1")
        for n in range(2):
            data = {"n": n}
            await node.world.send(sender, {"type": "message", "channel": "room-1", "data": data})
        # Each message gets its answer, and the lane goes on after the first.
        assert [(e["code"], e["channel"]) for e in await frames(ts, 2)] == [
            ("history_unavailable", "room-1"),
            ("history_unavailable", "room-1"),
        ]
        assert tr.take() == []  # no message without its number
    finally:
        await node.close()
