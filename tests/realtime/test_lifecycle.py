"""The scan (heartbeat, idle, token expiry) and the shutdown, with a hand-moved clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from fazt.realtime.lifecycle import scan_period
from fazt.realtime.session import HeartbeatPolicy
from tests.realtime.world import TOKENS, claims, make_app, make_world


def test_the_scan_period_is_a_quarter_of_the_smallest_interval_clamped() -> None:
    assert scan_period(HeartbeatPolicy(30, 10, 300)) == 0.1
    assert scan_period(HeartbeatPolicy(0.3, 0.3, 300)) == 0.075
    assert scan_period(HeartbeatPolicy(0.1, 0.1, 0.1)) == 0.05


@pytest.mark.gen_test
async def test_token_expiry_drops_private_keeps_public() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(100, 10, 1000))
    app = make_app()
    watcher, tw = await w.connect(app, claims("w"))
    await w.send(watcher, {"type": "subscribe", "channel": "presence-r"})
    s, t = await w.connect(app)
    now = int(time.time())
    await w.send(s, {"type": "auth", "token": TOKENS.issue("eve", ttl_seconds=5, now=now)})
    for name in ("private-a", "presence-r", "public"):
        await w.send(s, {"type": "subscribe", "channel": name})
    t.take()
    tw.take()
    w.clock.advance(6)
    w.core.scanner.scan()
    await w.core.tasks.drain()
    assert t.take() == [
        {"type": "unsubscribed", "channel": "private-a", "reason": "token_expired"},
        {"type": "unsubscribed", "channel": "presence-r", "reason": "token_expired"},
        {"type": "error", "code": "unauthorized", "error": "token expired"},
    ]
    assert list(s.subscriptions) == ["public"]
    assert s.claims is None and t.closed_with is None
    assert tw.take() == [
        {"type": "presence", "channel": "presence-r", "event": "leave", "client": {"id": "eve"}}
    ]
    w.core.scanner.scan()  # expired once: the next scan does nothing more
    await w.core.tasks.drain()
    assert t.take() == []


@pytest.mark.gen_test
async def test_heartbeat_ping_pong_timeout_idle() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(10, 2, 30))
    app = make_app()
    good, tg = await w.connect(app)
    _bad, tb = await w.connect(app)
    quiet, tq = await w.connect(app)
    await w.send(quiet, {"type": "subscribe", "channel": "c"})
    for t in (tg, tb, tq):
        t.take()
    w.clock.advance(10)
    w.core.scanner.scan()
    assert tg.take() == [{"type": "ping"}] and tb.take() == [{"type": "ping"}]
    await w.handle(good, '{"type":"pong"}')
    await w.handle(quiet, '{"type":"pong"}')
    w.clock.advance(2)
    w.core.scanner.scan()
    assert tb.closed_with == (4201, "pong not received")
    assert tg.closed_with is None
    for _ in range(5):
        w.clock.advance(10)
        w.core.scanner.scan()
        for s in (good, quiet):
            await w.handle(s, '{"type":"pong"}')
    assert tg.closed_with == (4202, "idle timeout")  # pongs are not activity
    assert tq.closed_with is None  # subscribed: never idle-closed


@pytest.mark.gen_test
async def test_shutdown_announces_closes_then_aborts_and_refuses_newcomers() -> None:
    w = await make_world()
    app = make_app()
    clients = [await w.connect(app) for _ in range(3)]
    for _, transport in clients:
        transport.take()
    shutdown = asyncio.ensure_future(w.core.shutdown.run(2, poll_seconds=0.001))
    while not shutdown.done():  # fake transports never report their close: time passes
        w.clock.advance(0.25)
        await asyncio.sleep(0.002)
    await shutdown
    for _, transport in clients:
        assert transport.messages == [{"type": "server_restart"}]
        assert transport.closed_with == (4200, "server restart")
        assert transport.aborted  # fake transports never report their close
    assert not await w.core.admission.admit(app)
