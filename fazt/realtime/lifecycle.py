"""The life of connections over time: the shared scan with token expiry, and the shutdown.

Words: the *scan* is one tick of one shared timer (thousands of connections
cost one timer, not thousands); it sends the heartbeat ``ping``s that are due,
closes connections whose ``pong`` or activity is overdue, and expires tokens.
It looks only at the sessions that are due: each session is filed in a
``DueWheel`` by the time it next needs a look (``Session.next_check``), so a
tick costs O(sessions due), not O(sessions), and 100,000 idle connections cost
nothing between their heartbeats. Pings are spread: at most ``ping_budget``
go out per tick, the rest a tick later (a reconnect storm's sessions would
otherwise all ping on the same tick). The timer itself is Tornado's and lives
in ``scan_timer``; everything here takes time from an injected clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Final

from fazt.metrics.realtime import REALTIME
from fazt.realtime import protocol
from fazt.realtime.due_wheel import DueWheel
from fazt.realtime.hub import Admission, Hub
from fazt.realtime.membership import Membership
from fazt.realtime.release import note_failure
from fazt.realtime.session import Due, HeartbeatPolicy, Session
from fazt.realtime.tasks import Tasks

MIN_SCAN_PERIOD_SECONDS: Final = 0.05
#: Short ticks keep each tick's share of the heartbeat small: at 18,000 connections
#: pinged every 5 s, one-second ticks sent 3,600 pings at once and the pongs came
#: back together, stalling the loop for tens of milliseconds; a tick with nothing
#: due costs microseconds, so ten a second cost nothing.
MAX_SCAN_PERIOD_SECONDS: Final = 0.1
#: Pings per tick, at least (more when the steady rate of pings needs more).
MIN_PINGS_PER_TICK: Final = 500


def scan_period(policy: HeartbeatPolicy) -> float:
    """A quarter of the smallest heartbeat interval, clamped to [50 ms, 100 ms]: every
    deadline fires within one period."""
    smallest = min(policy.ping_interval, policy.pong_timeout, policy.idle_timeout)
    return max(MIN_SCAN_PERIOD_SECONDS, min(MAX_SCAN_PERIOD_SECONDS, smallest / 4))


class Scanner:
    """Runs the scan: heartbeat pings, pong and idle timeouts, token expiry."""

    def __init__(
        self,
        hub: Hub,
        membership: Membership,
        policy: HeartbeatPolicy,
        tasks: Tasks,
        clock: Callable[[], float],
    ) -> None:
        self._hub = hub
        self._membership = membership
        self.policy = policy
        self._tasks = tasks
        self._clock = clock
        self.period = scan_period(policy)
        self.wheel = DueWheel(self.period, clock())
        #: Sessions the last tick looked at (for tests and the 100k simulation).
        self.last_looked_at = 0

    def watch(self, session: Session) -> None:
        """Start scanning a new session (``RealtimeCore.connect`` calls it)."""
        session.rescan = self._refile
        self.wheel.file(session, session.next_check(self._clock(), self.policy))

    def _refile(self, session: Session) -> None:
        if not session.closed:
            self.wheel.file(session, session.next_check(self._clock(), self.policy))

    @property
    def ping_budget(self) -> int:
        """Pings one tick may send: twice the steady rate of pings, at least
        ``MIN_PINGS_PER_TICK``."""
        steady = self.wheel.filed * self.period / self.policy.ping_interval
        return max(MIN_PINGS_PER_TICK, math.ceil(2 * steady))

    def scan(self) -> None:
        """One tick: the sessions that are due, and only those."""
        now = self._clock()
        policy = self.policy
        wheel = self.wheel
        budget = pings = self.ping_budget
        deferred = 0
        later = now + self.period
        # A whole wave due on one tick (a reconnect storm's sessions) is looked at
        # over several ticks, so no tick stalls the loop.
        due_sessions = wheel.take_due(now, 2 * budget)
        self.last_looked_at = len(due_sessions)
        for session in due_sessions:
            due = session.due(now, policy)
            if due is Due.PING:
                if pings <= 0:
                    # Spread: a budget's worth on each of the next ticks, so those
                    # ticks do not look at the whole wave again.
                    wheel.file(session, later + self.period * (deferred // budget))
                    deferred += 1
                    continue
                pings -= 1
                session.ping_sent(now)
                session.send(protocol.PING_FRAME)
            elif due is Due.PONG_TIMEOUT:
                _close(session, protocol.CLOSE_PONG_TIMEOUT)
                continue
            elif due is Due.IDLE_TIMEOUT:
                _close(session, protocol.CLOSE_IDLE_TIMEOUT)
                continue
            elif due is Due.TOKEN_EXPIRED:
                self._tasks.spawn(self.expire_token(session))
            if not session.closed:
                wheel.file(session, max(session.next_check(now, policy), later))

    async def expire_token(self, session: Session) -> None:
        """The token ran out: every subscription an anonymous client may not hold goes
        (private, presence, ``auth``, role and ``{sub}`` rules); the connection stays
        open as anonymous, even when leaving a channel failed. A fresh ``auth`` that
        lands while the channels are being left wins: its claims stay."""
        expired = session.claims
        if session.closed or expired is None:
            return
        session.token_expires_at = None  # the scan must not fire twice
        try:
            state = self._hub.state_of(session.app_uuid)
            if state is not None:
                await self._membership.leave_disallowed(state, session, None, "token_expired")
        except Exception:
            note_failure(session, "expiring its token")
        finally:
            if session.claims is expired:
                session.drop_auth()
                if not session.closed:
                    REALTIME.error_sent(session.app_uuid, protocol.UNAUTHORIZED)
                    session.send(protocol.error_frame(protocol.UNAUTHORIZED, "token expired"))
                try:
                    await self._membership.forget_user(session)
                except Exception:
                    note_failure(session, "forgetting its user")


class Shutdown:
    """The graceful stop of this node's connections."""

    def __init__(
        self, hub: Hub, admission: Admission, tasks: Tasks, clock: Callable[[], float]
    ) -> None:
        self._hub = hub
        self._admission = admission
        self._tasks = tasks
        self._clock = clock

    async def run(self, grace_seconds: float, poll_seconds: float = 0.02) -> None:
        """``server_restart`` to all, wait up to ``grace_seconds`` for clients to
        leave, close the rest with 4200, then drop what is still open."""
        self._admission.closing = True
        hub = self._hub
        for session in hub.sessions():
            if not session.closed:
                session.send(protocol.SERVER_RESTART_FRAME)
        await self._wait_for_no_connections(grace_seconds, poll_seconds)
        for session in hub.sessions():
            if not session.closed:
                _close(session, protocol.CLOSE_SERVER_RESTART)
        # Give closing handshakes a moment, then cut whatever is left.
        await self._wait_for_no_connections(
            min(1.0, max(grace_seconds, poll_seconds)), poll_seconds
        )
        for session in hub.sessions():
            session.transport.abort()
        # Let the handlers report those last closes, so the registry is cleaned
        # before the backplane stops.
        await self._wait_for_no_connections(0.5, poll_seconds)
        await self._tasks.drain()

    async def _wait_for_no_connections(self, seconds: float, poll_seconds: float) -> None:
        deadline = self._clock() + seconds
        while self._hub.connection_count() and self._clock() < deadline:
            await asyncio.sleep(poll_seconds)


def _close(session: Session, code: int) -> None:
    session.close(code, protocol.close_reason(code))
