"""The life of connections over time: the shared scan with token expiry, and the shutdown.

Words: the *scan* is one pass of one shared timer over every local session
(thousands of connections cost one timer, not thousands); it sends the
heartbeat ``ping``s that are due, closes connections whose ``pong`` or activity
is overdue, and expires tokens. The timer itself is Tornado's and lives in
``scan_timer``; everything here takes time from an injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from fazt.realtime import protocol
from fazt.realtime.hub import Admission, Hub
from fazt.realtime.membership import Membership
from fazt.realtime.release import note_failure
from fazt.realtime.session import Due, HeartbeatPolicy, Session
from fazt.realtime.tasks import Tasks

MIN_SCAN_PERIOD_SECONDS: Final = 0.05
MAX_SCAN_PERIOD_SECONDS: Final = 1.0


def scan_period(policy: HeartbeatPolicy) -> float:
    """A quarter of the smallest heartbeat interval, clamped to [50 ms, 1 s]: every
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

    def scan(self) -> None:
        """One pass over every local session."""
        now = self._clock()
        policy = self.policy
        for session in self._hub.sessions():
            if session.closed:
                continue
            due = session.due(now, policy)
            if due is Due.NOTHING:
                continue
            if due is Due.PING:
                session.ping_sent(now)
                session.send(protocol.PING_FRAME)
            elif due is Due.PONG_TIMEOUT:
                _close(session, protocol.CLOSE_PONG_TIMEOUT)
            elif due is Due.IDLE_TIMEOUT:
                _close(session, protocol.CLOSE_IDLE_TIMEOUT)
            elif due is Due.TOKEN_EXPIRED:
                self._tasks.spawn(self.expire_token(session))

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
                    session.send(protocol.error_frame(protocol.UNAUTHORIZED, "token expired"))


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
