"""Realtime hooks through the realtime core, with real JS on a real engine (no sockets).

Every return form of ``onSubscribe`` and ``onPublish``, their fail-closed
paths, order under slow hooks, the bounds, and the events: joins and leaves
once per user, channels occupied and vacated once (with the vacated delay),
on one node and on an in-process cluster of two (``tests/cluster`` runs the
same across real processes and Redis).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop

from fazt.realtime import hook_verdicts
from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.node import MemoryNetwork, memory_backplane
from fazt.realtime.backplane.registry_memory import MemoryRegistry
from fazt.realtime.hooks import HookSettings
from fazt.realtime.publish_lanes import MAX_PENDING_PER_CONNECTION
from fazt.realtime.session import Session
from tests.realtime.backplane.support import eventually
from tests.realtime.fakes import FakeTransport
from tests.realtime.hooked import RECORDING_HOOKS, HookedNode, hooked_app, hooked_node

pytestmark = pytest.mark.gen_test(timeout=30)

DECISIONS = """
exports.onSubscribe = async ({ channel, clientId, user }) => {
  await fazt.test.record('onSubscribe', channel, typeof clientId, user && user.id);
  switch (channel) {
    case 'sub-true': return true;
    case 'sub-undefined': return undefined;
    case 'sub-allow': return { allow: true };
    case 'sub-false': return false;
    case 'sub-deny': return { allow: false, reason: 'invite only' };
    case 'sub-deny-bare': return { allow: false };
    case 'sub-42': return 42;
    case 'sub-null': return null;
    case 'sub-throw': throw new Error('the subscribe hook broke');
    case 'sub-reject': return Promise.reject(new Error('the subscribe hook rejected'));
    case 'sub-spin': for (;;) {}
    case 'sub-alice': return user !== null && user.id === 'alice';
  }
  return true;
};

exports.onPublish = async ({ channel, clientId, user, data }) => {
  if (data && data.delay) await fazt.test.nap(data.delay);
  switch (data && data.answer) {
    case 'true': return true;
    case 'rewrite': return { data: { text: data.text.trim(), by: user ? user.id : null } };
    case 'null-data': return { data: null };
    case 'false': return false;
    case 'reject': return { reject: 'too long' };
    case 'reject-empty': return { reject: '' };
    case 'throw': throw new TypeError('the publish hook broke');
    case 'spin': for (;;) {}
    case 'bad': return 'yes';
    case 'huge': return { data: 'x'.repeat(80 * 1024) };
    case 'broadcast':
      await fazt.realtime.broadcast('pub-side', { saw: data.text, from: clientId });
      return undefined;
  }
  return undefined;
};
"""

CHANNELS: dict[str, dict[str, Any]] = {
    "sub-*": {"hooks": ["subscribe"]},
    "private-sub-*": {"auth": True, "hooks": ["subscribe"]},
    "pub-*": {"publish": True, "hooks": ["publish"]},
    "plain-*": {"publish": True},
    "presence-*": {"hooks": ["presence"]},
    "occ-*": {"hooks": ["occupancy"]},
}


@pytest.fixture
def node(io_loop: tornado.ioloop.IOLoop) -> Iterator[HookedNode]:
    settings = HookSettings(time_limit_seconds=0.5, vacated_delay_seconds=0.2)
    node = io_loop.run_sync(lambda: hooked_node(settings))
    yield node
    io_loop.run_sync(node.close, timeout=10)


async def connect(
    node: HookedNode, app: Any, sub: str | None = None
) -> tuple[Session, FakeTransport]:
    return await node.client(app, sub)


async def subscribe(
    node: HookedNode, session: Session, transport: FakeTransport, channel: str
) -> dict[str, Any]:
    await node.world.send(session, {"type": "subscribe", "channel": channel})
    replies = transport.take()
    assert len(replies) == 1, replies
    return replies[0]


def refused(code: str, text: str, channel: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "error": text, "channel": channel}


# -- onSubscribe -------------------------------------------------------------------------
@pytest.mark.parametrize("channel", ["sub-true", "sub-undefined", "sub-allow"])
async def test_subscribe_is_allowed_by_true_undefined_and_allow_true(
    node: HookedNode, tmp_path: Path, channel: str
) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    session, transport = await connect(node, app, "ann")
    assert await subscribe(node, session, transport, channel) == {
        "type": "subscribed",
        "channel": channel,
    }
    assert node.recorder.of("onSubscribe") == [["onSubscribe", channel, "string", "ann"]]


@pytest.mark.parametrize(
    ("channel", "text"),
    [
        ("sub-false", hook_verdicts.SUBSCRIBE_REFUSED),
        ("sub-deny", "invite only"),
        ("sub-deny-bare", hook_verdicts.SUBSCRIBE_REFUSED),
    ],
)
async def test_subscribe_is_refused_by_false_and_allow_false_with_the_reason(
    node: HookedNode, tmp_path: Path, channel: str, text: str
) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    session, transport = await connect(node, app, "ann")
    assert await subscribe(node, session, transport, channel) == refused("forbidden", text, channel)
    assert channel not in session.subscriptions
    assert await node.world.core.api(app).count(channel) == 0


@pytest.mark.parametrize(
    ("channel", "cause"),
    [
        ("sub-throw", "the subscribe hook broke"),
        ("sub-reject", "the subscribe hook rejected"),
        ("sub-spin", "wall-clock time limit"),
        ("sub-42", "returned 42"),
        ("sub-null", "returned null"),
    ],
)
async def test_a_failing_subscribe_hook_fails_closed_and_the_cause_is_logged(
    node: HookedNode,
    tmp_path: Path,
    channel: str,
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    session, transport = await connect(node, app, "ann")
    with caplog.at_level(logging.WARNING):
        reply = await subscribe(node, session, transport, channel)
    assert reply == refused("forbidden", hook_verdicts.SUBSCRIBE_FAILED, channel)
    assert any(
        "app chat: hook onSubscribe failed" in r.getMessage() and cause in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    # The connection is fine: the next subscribe works.
    assert (await subscribe(node, session, transport, "sub-true"))["type"] == "subscribed"


async def test_a_missing_subscribe_hook_fails_closed(
    node: HookedNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = hooked_app(tmp_path, RECORDING_HOOKS, CHANNELS)
    session, transport = await connect(node, app, "ann")
    with caplog.at_level(logging.WARNING):
        reply = await subscribe(node, session, transport, "sub-true")
    assert reply == refused("forbidden", hook_verdicts.SUBSCRIBE_FAILED, "sub-true")
    assert any("does not export a function onSubscribe" in r.getMessage() for r in caplog.records)


async def test_the_subscribe_hook_sees_who_asks_and_is_asked_every_time(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    alice, ta = await connect(node, app, "alice")
    bob, tb = await connect(node, app, "bob")
    anonymous, tn = await connect(node, app)
    assert (await subscribe(node, alice, ta, "sub-alice"))["type"] == "subscribed"
    assert (await subscribe(node, bob, tb, "sub-alice"))["code"] == "forbidden"
    assert (await subscribe(node, anonymous, tn, "sub-alice"))["code"] == "forbidden"
    await node.world.send(alice, {"type": "unsubscribe", "channel": "sub-alice"})
    ta.take()
    assert (await subscribe(node, alice, ta, "sub-alice"))["type"] == "subscribed"
    # Subscribing again to a channel one has answers without asking (idempotent).
    assert (await subscribe(node, alice, ta, "sub-alice"))["type"] == "subscribed"
    assert node.recorder.of("onSubscribe") == [
        ["onSubscribe", "sub-alice", "string", "alice"],
        ["onSubscribe", "sub-alice", "string", "bob"],
        ["onSubscribe", "sub-alice", "string", None],
        ["onSubscribe", "sub-alice", "string", "alice"],
    ]


async def test_static_rules_refuse_before_the_hook_runs(node: HookedNode, tmp_path: Path) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    session, transport = await connect(node, app)
    reply = await subscribe(node, session, transport, "private-sub-x")
    assert reply["code"] == "unauthorized"
    assert node.recorder.events == []


async def test_channels_without_hooks_call_no_js(node: HookedNode, tmp_path: Path) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    sender, ts = await connect(node, app, "ann")
    reader, tr = await connect(node, app, "bob")
    for session, transport in ((sender, ts), (reader, tr)):
        assert (await subscribe(node, session, transport, "plain-room"))["type"] == "subscribed"
    await node.world.send(sender, {"type": "message", "channel": "plain-room", "data": 1})
    # Published at once, in the same call: no hook in between.
    assert [m["data"] for m in tr.take()] == [1]
    await node.world.send(sender, {"type": "unsubscribe", "channel": "plain-room"})
    await node.world.core.tasks.drain()
    assert node.recorder.events == []
    assert node.world.core.hooks.counts(app.uuid).calls == 0


# -- onPublish -------------------------------------------------------------------------------
async def publishing(
    node: HookedNode, tmp_path: Path, channel: str = "pub-room"
) -> tuple[Any, Session, FakeTransport, FakeTransport]:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    sender, ts = await connect(node, app, "ann")
    reader, tr = await connect(node, app, "bob")
    for session, transport in ((sender, ts), (reader, tr)):
        assert (await subscribe(node, session, transport, channel))["type"] == "subscribed"
    return app, sender, ts, tr


async def arrivals(transport: FakeTransport, count: int) -> list[dict[str, Any]]:
    await eventually(lambda: len(transport.frames) >= count, f"{count} frames")
    return transport.take()


@pytest.mark.parametrize(
    ("data", "published"),
    [
        ({"answer": "undefined", "text": "hi"}, {"answer": "undefined", "text": "hi"}),
        ({"answer": "true", "text": "hi"}, {"answer": "true", "text": "hi"}),
        ({"answer": "rewrite", "text": "  hi  "}, {"text": "hi", "by": "ann"}),
        ({"answer": "null-data"}, None),
    ],
)
async def test_publish_goes_out_as_sent_or_as_the_hook_rewrote_it(
    node: HookedNode, tmp_path: Path, data: dict[str, Any], published: Any
) -> None:
    _, sender, ts, tr = await publishing(node, tmp_path)
    await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": data})
    assert await arrivals(tr, 1) == [
        {
            "type": "message",
            "channel": "pub-room",
            "data": published,
            "timestamp": 42,
            "from": sender.client_id,
        }
    ]
    assert ts.take() == []  # never echoed, nothing refused


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ("false", hook_verdicts.PUBLISH_REJECTED),
        ("reject", "too long"),
        ("reject-empty", hook_verdicts.PUBLISH_REJECTED),
        ("throw", hook_verdicts.PUBLISH_FAILED),
        ("spin", hook_verdicts.PUBLISH_FAILED),
        ("bad", hook_verdicts.PUBLISH_FAILED),
        ("huge", "the message the app made of yours is too big to send"),
    ],
)
async def test_a_refused_or_failed_publish_answers_the_sender_rejected(
    node: HookedNode, tmp_path: Path, answer: str, text: str
) -> None:
    _, sender, ts, tr = await publishing(node, tmp_path)
    await node.world.send(
        sender, {"type": "message", "channel": "pub-room", "data": {"answer": answer}}
    )
    assert await arrivals(ts, 1) == [refused("rejected", text, "pub-room")]
    # Nothing reached the other subscriber: a later message proves the lane moved on.
    await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": "after"})
    assert [m["data"] for m in await arrivals(tr, 1)] == ["after"]


async def test_messages_keep_their_order_when_hooks_finish_out_of_order(
    node: HookedNode, tmp_path: Path
) -> None:
    _, sender, ts, tr = await publishing(node, tmp_path)
    other = {"type": "subscribe", "channel": "pub-other"}
    await node.world.send(sender, other)
    ts.take()
    delays = [0.3, 0, 0.15, 0, 0.05, 0]
    for index, delay in enumerate(delays):
        data = {"n": index, "delay": delay, "answer": "false" if index == 3 else "true"}
        await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": data})
    # The connection is not held by the slow hooks: other requests are answered at once.
    await node.world.send(sender, {"type": "ping"})
    assert ts.take() == [{"type": "pong"}]
    received = await arrivals(tr, len(delays) - 1)
    assert [message["data"]["n"] for message in received] == [0, 1, 2, 4, 5]
    assert ts.take() == [refused("rejected", hook_verdicts.PUBLISH_REJECTED, "pub-room")]


async def test_the_publish_hook_may_call_the_realtime_api(node: HookedNode, tmp_path: Path) -> None:
    app = hooked_app(tmp_path, DECISIONS, CHANNELS)
    sender, ts = await connect(node, app, "ann")
    reader, tr = await connect(node, app, "bob")
    await subscribe(node, sender, ts, "pub-room")
    for channel in ("pub-room", "pub-side"):
        await subscribe(node, reader, tr, channel)
    data = {"answer": "broadcast", "text": "yo"}
    await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": data})
    received = await arrivals(tr, 2)
    assert [(m["channel"], m["data"]) for m in received] == [
        ("pub-side", {"saw": "yo", "from": sender.client_id}),
        ("pub-room", data),
    ]


async def test_a_connection_may_have_a_bounded_number_of_messages_waiting(
    node: HookedNode, tmp_path: Path
) -> None:
    _, sender, ts, tr = await publishing(node, tmp_path)
    for index in range(MAX_PENDING_PER_CONNECTION + 1):
        # Each waits a little (eight at a time, the engine's cap here): all still wait
        # when the last one arrives, all are done well within their time limit.
        data = {"n": index, "delay": 0.05}
        await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": data})
    refusal = ts.take()
    assert len(refusal) == 1 and refusal[0]["code"] == "rejected", refusal
    assert refusal[0]["error"].startswith(f"at most {MAX_PENDING_PER_CONNECTION} messages")
    received = await arrivals(tr, MAX_PENDING_PER_CONNECTION)
    assert [m["data"]["n"] for m in received] == list(range(MAX_PENDING_PER_CONNECTION))


# -- bounds ----------------------------------------------------------------------------------
async def test_an_apps_hook_calls_are_bounded_decisions_fail_closed_events_drop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = DECISIONS + "exports.onOccupied = ({ channel }) => fazt.test.record('occ', channel);"
    node = await hooked_node(HookSettings(max_pending_per_app=2, vacated_delay_seconds=0.2))
    try:
        app = hooked_app(tmp_path, source, CHANNELS)
        sender, ts = await connect(node, app, "ann")
        await subscribe(node, sender, ts, "pub-room")
        for index in range(2):  # two slow hooks take the app's two places
            data = {"n": index, "delay": 0.5}
            await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": data})
        other, to = await connect(node, app, "bob")
        with caplog.at_level(logging.WARNING, logger="fazt.realtime.hooks"):
            assert await subscribe(node, other, to, "sub-true") == refused(
                "forbidden", hook_verdicts.HOOKS_BUSY, "sub-true"
            )
            for channel in ("occ-a", "occ-b"):  # events with no place: dropped
                assert (await subscribe(node, other, to, channel))["type"] == "subscribed"
            await node.world.send(sender, {"type": "message", "channel": "pub-room", "data": 9})
            assert await arrivals(ts, 1) == [
                refused("rejected", hook_verdicts.HOOKS_BUSY, "pub-room")
            ]
        counts = node.world.core.hooks.counts(app.uuid)
        assert counts.dropped == 4
        drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(drops) == 1, drops  # once per interval, not once per drop
        assert "app chat: hook onSubscribe dropped" in drops[0]
        assert "maxPendingPerApp" in drops[0]
        # Once the slow hooks are done, hooks run again.
        await eventually(lambda: node.world.core.hooks.counts(app.uuid).calls == 2, "calls")
        await eventually(lambda: app.uuid not in node.world.core.hooks._pending, "free places")
        assert (await subscribe(node, other, to, "occ-c"))["type"] == "subscribed"
        await node.wait_for(lambda r: r.of("occ") == [["occ", "occ-c"]], "occupied occ-c")
    finally:
        await node.close()


# -- events ------------------------------------------------------------------------------------
async def test_join_and_leave_fire_once_per_user_not_per_tab(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, RECORDING_HOOKS, CHANNELS)
    tab1, t1 = await connect(node, app, "alice")
    tab2, t2 = await connect(node, app, "alice")
    bob, tb = await connect(node, app, "bob")
    for session, transport in ((tab1, t1), (tab2, t2), (bob, tb)):
        await subscribe(node, session, transport, "presence-room")
    await node.wait_for(lambda r: len(r.of("onJoin")) == 2, "two joins")
    await node.world.disconnect(tab1)
    await node.world.send(bob, {"type": "unsubscribe", "channel": "presence-room"})
    await node.wait_for(lambda r: len(r.of("onLeave")) == 1, "bob's leave")
    await node.world.disconnect(tab2)
    await node.wait_for(lambda r: len(r.of("onLeave")) == 2, "alice's leave")
    await node.world.core.tasks.drain()
    assert sorted(map(tuple, node.recorder.of("onJoin"))) == [
        ("onJoin", "presence-room", "alice"),
        ("onJoin", "presence-room", "bob"),
    ]
    assert node.recorder.of("onLeave") == [
        ["onLeave", "presence-room", "bob"],
        ["onLeave", "presence-room", "alice"],
    ]
    # No presence hook on a channel whose rule does not ask for it.
    assert node.recorder.of("onOccupied") == []


async def test_occupied_on_the_first_subscriber_vacated_after_the_delay(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, RECORDING_HOOKS, CHANNELS)
    a, ta = await connect(node, app, "a")
    b, tb = await connect(node, app, "b")
    await subscribe(node, a, ta, "occ-room")
    await subscribe(node, b, tb, "occ-room")
    await node.wait_for(lambda r: r.of("onOccupied") == [["onOccupied", "occ-room"]], "occupied")
    await node.world.send(a, {"type": "unsubscribe", "channel": "occ-room"})
    await node.world.disconnect(b)
    loop = asyncio.get_running_loop()
    emptied = loop.time()
    await node.wait_for(lambda r: r.of("onVacated") == [["onVacated", "occ-room"]], "vacated")
    assert loop.time() - emptied >= 0.2  # vacatedDelaySeconds
    await asyncio.sleep(0.3)
    assert node.recorder.events == [["onOccupied", "occ-room"], ["onVacated", "occ-room"]]


async def test_a_subscriber_back_within_the_delay_fires_neither_event(
    node: HookedNode, tmp_path: Path
) -> None:
    app = hooked_app(tmp_path, RECORDING_HOOKS, CHANNELS)
    a, ta = await connect(node, app, "a")
    await subscribe(node, a, ta, "occ-room")
    await node.wait_for(lambda r: len(r.of("onOccupied")) == 1, "occupied")
    for _ in range(3):  # a page reloading: gone and back within the delay
        await node.world.send(a, {"type": "unsubscribe", "channel": "occ-room"})
        ta.take()
        await asyncio.sleep(0.05)
        await subscribe(node, a, ta, "occ-room")
    await asyncio.sleep(0.5)  # well past the delay
    await node.world.core.tasks.drain()
    assert node.recorder.events == [["onOccupied", "occ-room"]]


async def test_a_stopping_node_fires_its_held_vacancies_at_once(tmp_path: Path) -> None:
    node = await hooked_node(HookSettings(vacated_delay_seconds=30))
    app = hooked_app(tmp_path, RECORDING_HOOKS, CHANNELS)
    try:
        a, ta = await connect(node, app, "a")
        await subscribe(node, a, ta, "occ-room")
        await node.world.disconnect(a)
        await node.world.core.tasks.drain()
        assert node.recorder.of("onVacated") == []
    finally:
        await node.close()
    assert node.recorder.of("onVacated") == [["onVacated", "occ-room"]]


async def test_event_hook_failures_are_logged_with_app_and_hook(
    node: HookedNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = "exports.onOccupied = () => { throw new Error('occupancy hook broke'); };"
    app = hooked_app(tmp_path, source, CHANNELS)
    a, ta = await connect(node, app, "a")
    with caplog.at_level(logging.WARNING):
        await subscribe(node, a, ta, "occ-room")
        await subscribe(node, a, ta, "presence-room")  # onJoin is not exported
        await node.world.core.tasks.drain()
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "app chat: hook onOccupied failed for occ-room: occupancy hook broke" in line
        for line in lines
    ), lines
    assert any(
        "app chat: hook onJoin failed for presence-room: api/_realtime.js does not export "
        "a function onJoin" in line
        for line in lines
    ), lines
    assert node.world.core.hooks.counts(app.uuid).failed == 2


# -- two nodes ---------------------------------------------------------------------------------
async def test_two_nodes_fire_each_event_on_exactly_one_of_them(tmp_path: Path) -> None:
    network = MemoryNetwork()
    nodes = [
        await hooked_node(
            HookSettings(vacated_delay_seconds=0.2),
            backplane=memory_backplane(network, f"n{i}", presence_ttl_seconds=0.3),
        )
        for i in (1, 2)
    ]
    app = hooked_app(
        tmp_path, RECORDING_HOOKS, {"presence-*": {"hooks": ["presence", "occupancy"]}}
    )

    def everywhere(hook: str) -> list[list[Any]]:
        return [event for node in nodes for event in node.recorder.of(hook)]

    try:
        # Two tabs of one user, one on each node.
        tabs = [await connect(node, app, "alice") for node in nodes]
        for node, (session, transport) in zip(nodes, tabs, strict=True):
            await subscribe(node, session, transport, "presence-room")
        await eventually(lambda: len(everywhere("onJoin")) >= 1, "the join")
        await eventually(lambda: len(everywhere("onOccupied")) >= 1, "occupied")
        # The second node leaves; the first tab keeps alice present and the channel busy.
        await nodes[1].world.disconnect(tabs[1][0])
        await asyncio.sleep(0.4)
        assert everywhere("onLeave") == [] and everywhere("onVacated") == []
        await nodes[0].world.disconnect(tabs[0][0])
        await eventually(lambda: len(everywhere("onVacated")) >= 1, "vacated")
        await eventually(lambda: len(everywhere("onLeave")) >= 1, "the leave")
        await asyncio.sleep(0.4)
        assert everywhere("onJoin") == [["onJoin", "presence-room", "alice"]]
        assert everywhere("onLeave") == [["onLeave", "presence-room", "alice"]]
        assert everywhere("onOccupied") == [["onOccupied", "presence-room"]]
        assert everywhere("onVacated") == [["onVacated", "presence-room"]]
    finally:
        for node in nodes:
            await node.close()


async def test_a_crashed_nodes_members_leave_and_channels_vacate_once(tmp_path: Path) -> None:
    network = MemoryNetwork()
    survivors = [
        await hooked_node(backplane=memory_backplane(network, f"s{i}", presence_ttl_seconds=0.3))
        for i in (1, 2)
    ]
    doomed = await hooked_node(
        backplane=memory_backplane(network, "dead", presence_ttl_seconds=0.3)
    )
    channels = {
        "presence-*": {"hooks": ["presence", "occupancy"]},
        "occ-*": {"hooks": ["occupancy"]},
    }
    app = hooked_app(tmp_path, RECORDING_HOOKS, channels)
    # The survivors know the app (as a kernel would from its apps folder).
    for node in survivors:
        await connect(node, app, "watcher")
    victim, tv = await connect(doomed, app, "ghost")
    await subscribe(doomed, victim, tv, "presence-room")
    await subscribe(doomed, victim, tv, "occ-room")
    await doomed.wait_for(lambda r: len(r.of("onOccupied")) == 2, "occupied twice")
    backplane = doomed.world.core.backplane
    assert isinstance(backplane.bus, MemoryBus)
    assert isinstance(backplane.registry, MemoryRegistry)
    backplane.bus.crash()  # kill -9: no cleanup at all
    backplane.registry.crash()

    def everywhere(hook: str) -> list[list[Any]]:
        return [event for node in survivors for event in node.recorder.of(hook)]

    try:
        await eventually(lambda: len(everywhere("onVacated")) >= 2, "the sweep's vacated")
        await eventually(lambda: len(everywhere("onLeave")) >= 1, "the sweep's leave")
        await asyncio.sleep(0.5)  # more sweeps: nothing twice
        assert everywhere("onLeave") == [["onLeave", "presence-room", "ghost"]]
        assert sorted(map(tuple, everywhere("onVacated"))) == [
            ("onVacated", "occ-room"),
            ("onVacated", "presence-room"),
        ]
        # All on the one survivor whose sweep claimed the dead node.
        assert [bool(node.recorder.events) for node in survivors].count(True) == 1
    finally:
        for node in survivors:
            await node.close()
        doomed.engine.close()
