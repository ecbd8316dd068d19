"""The scan's timer wheel: a tick looks only at the sessions that are due (no sockets)."""

from __future__ import annotations

import pytest

from fazt.realtime.due_wheel import DueWheel
from fazt.realtime.session import HeartbeatPolicy, Session
from tests.realtime.fakes import FakeTransport
from tests.realtime.world import make_app, make_world

POLICY = HeartbeatPolicy(30, 10, 300)


def session(now: float = 0.0, name: str = "c") -> Session:
    return Session(
        client_id=name,
        app_uuid="app",
        transport=FakeTransport(),
        now=now,
        connected_at_ms=0,
        ping_interval=POLICY.ping_interval,
        messages_per_second=10,
    )


def test_a_tick_takes_only_its_own_bucket() -> None:
    wheel = DueWheel(1.0, now=0.0)
    sessions = [session(name=str(n)) for n in range(1000)]
    for n, item in enumerate(sessions):
        wheel.file(item, 10.0 + n % 30)  # 30 ticks' worth, ~33 per tick
    assert wheel.take_due(9.5) == []
    first = wheel.take_due(10.0)
    assert len(first) == 34 and all(item.check_at is None for item in first)
    assert wheel.take_due(10.5) == []  # the same tick again: nothing
    assert len(wheel.take_due(12.0)) == 68  # two ticks: 11 and 12
    assert wheel.filed == 1000 - 34 - 68


def test_stale_and_closed_entries_are_skipped_and_a_long_pause_catches_up() -> None:
    wheel = DueWheel(1.0, now=0.0)
    early, late, gone = session(name="e"), session(name="l"), session(name="g")
    wheel.file(early, 20.0)
    wheel.file(early, 5.0)  # filed again, sooner: the later entry goes stale
    wheel.file(late, 500.0)
    wheel.file(gone, 6.0)
    gone.closed = True
    wheel.file(session(name="past"), -3.0)  # a past time: the next tick
    assert [item.client_id for item in wheel.take_due(1.0)] == ["past"]
    assert wheel.take_due(7.0) == [early]
    assert wheel.take_due(25.0) == []  # early's old entry is stale
    assert wheel.take_due(10_000.0) == [late]  # a pause of many ticks
    assert wheel.filed == 0


def test_a_limit_leaves_the_rest_of_a_wave_for_the_next_ticks() -> None:
    wheel = DueWheel(1.0, now=0.0)
    wave = [session(name=str(n)) for n in range(250)]
    for item in wave:
        wheel.file(item, 5.0)
    taken = [wheel.take_due(now, limit=100) for now in (5.0, 6.0, 7.0, 8.0)]
    assert [len(part) for part in taken] == [100, 100, 50, 0]
    assert [item for part in taken for item in part] == wave  # each once, in order


@pytest.mark.gen_test
async def test_the_scan_looks_only_at_due_sessions_and_spreads_pings() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(30, 10, 300))
    app = make_app()
    transports = []
    for _ in range(1200):  # all connected at the same instant: one ping wave
        _, transport = await w.connect(app)
        transports.append(transport)
    for transport in transports:
        transport.take()
    scanner = w.core.scanner
    w.clock.advance(10)
    scanner.scan()
    assert scanner.last_looked_at == 0  # 1,200 sessions, none due: nothing looked at
    w.clock.advance(20)
    sent = []
    for _ in range(4):
        scanner.scan()
        sent.append(sum(1 for transport in transports if transport.take()))
        w.clock.advance(scanner.period)
    assert sum(sent) == 1200 and max(sent) <= scanner.ping_budget < 1200
    assert sent[0] == scanner.ping_budget  # the wave was cut into ticks


@pytest.mark.gen_test
async def test_a_sooner_token_expiry_files_the_session_again() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(100, 10, 1000))
    s, _ = await w.connect(make_app())
    start = w.clock()
    assert s.check_at == start + 100  # the first ping
    s.authenticate({"sub": "a"}, expires_at=start + 5)
    assert s.check_at == start + 5
    w.clock.advance(5)
    w.core.scanner.scan()
    assert w.core.scanner.last_looked_at == 1
