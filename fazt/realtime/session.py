"""One connection's state, pure: subscriptions, rate bucket, heartbeat and idle clocks.

Time is always a parameter (``now``, seconds on a monotonic clock), so every
rule here is tested without sleeping. The hub registers sessions; the
lifecycle's shared scan asks each one what is due with ``due(now)``.

Words: the *heartbeat* is the JSON ping/pong with the client (its settings are
``HeartbeatPolicy``); the *scan* is the one timer pass over every local session
that finds due pings, timeouts and token expiries.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, Protocol


class Transport(Protocol):
    """A write-only view of one connection (no read method: reads go handler -> hub)."""

    def send_frame(self, frame: bytes) -> None:
        """Queue ``frame`` (complete frame bytes) for this connection, in order.

        Never blocks and never raises; when the connection is closing it is a no-op,
        and when its bounded outgoing queue is full the connection is closed (4101).
        """

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code``; idempotent."""

    def abort(self) -> None:
        """Drop the connection now, without a handshake (end of a graceful shutdown)."""


class Due(enum.Enum):
    """What the scan must do for a session now."""

    NOTHING = 0
    PING = 1
    PONG_TIMEOUT = 2
    IDLE_TIMEOUT = 3
    TOKEN_EXPIRED = 4


_NOTHING: Final = Due.NOTHING


class HeartbeatPolicy:
    """The kernel's heartbeat settings (seconds), shared by every session."""

    __slots__ = ("idle_timeout", "ping_interval", "pong_timeout")

    def __init__(self, ping_interval: float, pong_timeout: float, idle_timeout: float) -> None:
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.idle_timeout = idle_timeout


class Session:
    """A connected client. ``__slots__`` keeps thousands of them small.

    Invariants: ``subscriptions`` holds channel names (not keys) of this app;
    ``ping_sent_at`` is not None exactly while a ping awaits its pong.
    """

    __slots__ = (
        "_rate_capacity",
        "_rate_per_second",
        "_rate_refilled_at",
        "_rate_tokens",
        "_rate_warned_at",
        "app_uuid",
        "check_at",
        "claims",
        "client_id",
        "closed",
        "connected_at_ms",
        "last_activity",
        "next_ping_at",
        "ping_sent_at",
        "rescan",
        "send",
        "subscriptions",
        "token_expires_at",
        "transport",
    )

    def __init__(
        self,
        *,
        client_id: str,
        app_uuid: str,
        transport: Transport,
        now: float,
        connected_at_ms: int,
        ping_interval: float,
        messages_per_second: int,
        claims: dict[str, Any] | None = None,
        token_expires_at: float | None = None,
    ) -> None:
        self.client_id = client_id
        self.app_uuid = app_uuid
        self.transport = transport
        # The bound method is stored once: the fan-out loop calls it directly.
        self.send = transport.send_frame
        self.claims = claims
        self.token_expires_at = token_expires_at
        self.connected_at_ms = connected_at_ms
        self.subscriptions: dict[str, None] = {}  # ordered set of channel names
        self.closed = False
        self.last_activity = now
        self.next_ping_at = now + ping_interval
        self.ping_sent_at: float | None = None
        #: When the scan will next look at this session (None: not filed, or being looked at).
        self.check_at: float | None = None
        #: Set by the scan: files the session again when a deadline moves earlier.
        self.rescan: Callable[[Session], None] | None = None
        # One float object for the three (floats are immutable; 48 bytes a session).
        rate = float(messages_per_second)
        self._rate_capacity = self._rate_per_second = self._rate_tokens = rate
        self._rate_refilled_at = now
        self._rate_warned_at: float | None = None

    def close(self, code: int, reason: str) -> None:
        """Close from the server side; the handler reports the disconnect later."""
        self.closed = True
        self.transport.close(code, reason)

    # -- identity -----------------------------------------------------------------
    def authenticate(self, claims: dict[str, Any], expires_at: float | None) -> None:
        self.claims = claims
        self.token_expires_at = expires_at
        check_at = self.check_at
        if (
            expires_at is not None
            and check_at is not None
            and expires_at < check_at
            and self.rescan is not None
        ):
            self.rescan(self)  # the token expires before the scan would look again

    def drop_auth(self) -> None:
        self.claims = None
        self.token_expires_at = None

    def public_info(self) -> dict[str, Any]:
        """The ``subscribers()`` entry: ``{clientId, connectedAt, metadata}``."""
        return {
            "clientId": self.client_id,
            "connectedAt": self.connected_at_ms,
            "metadata": dict(self.claims) if self.claims else {},
        }

    # -- rate limit: a token bucket of ``maxMessagesPerSecond`` tokens ----------------
    def take_message_token(self, now: float) -> bool:
        """Spend one token for an incoming message; False when the client is over its rate."""
        elapsed = now - self._rate_refilled_at
        if elapsed > 0:
            self._rate_tokens = min(
                self._rate_capacity, self._rate_tokens + elapsed * self._rate_per_second
            )
            self._rate_refilled_at = now
        if self._rate_tokens >= 1.0:
            self._rate_tokens -= 1.0
            return True
        return False

    def should_warn_rate(self, now: float) -> bool:
        """True at most once a second: when to send a ``rate_limited`` error."""
        if self._rate_warned_at is not None and now - self._rate_warned_at < 1.0:
            return False
        self._rate_warned_at = now
        return True

    # -- activity, heartbeat, idle -----------------------------------------------------
    def touch(self, now: float) -> None:
        """A message other than ``pong`` arrived: the client is not idle."""
        self.last_activity = now

    def pong(self, now: float, policy: HeartbeatPolicy) -> None:
        self.ping_sent_at = None
        self.next_ping_at = now + policy.ping_interval

    def ping_sent(self, now: float) -> None:
        self.ping_sent_at = now

    def due(self, now: float, policy: HeartbeatPolicy) -> Due:
        """What the scan must do now. Order: token expiry, pong timeout,
        idle timeout, ping. A client with subscriptions is never idle."""
        if self.token_expires_at is not None and now >= self.token_expires_at:
            return Due.TOKEN_EXPIRED
        if self.ping_sent_at is not None and now - self.ping_sent_at >= policy.pong_timeout:
            return Due.PONG_TIMEOUT
        if not self.subscriptions and now - self.last_activity >= policy.idle_timeout:
            return Due.IDLE_TIMEOUT
        if self.ping_sent_at is None and now >= self.next_ping_at:
            return Due.PING
        return _NOTHING

    def next_check(self, now: float, policy: HeartbeatPolicy) -> float:
        """When ``due`` may next answer something other than NOTHING, if nothing else
        happens (activity and pongs only make it later; see ``authenticate``).

        The idle deadline counts even for a subscribed client, so that a client
        whose subscriptions the server dropped is looked at within one idle
        timeout, without the hub telling the scan.
        """
        if self.ping_sent_at is not None:
            at = self.ping_sent_at + policy.pong_timeout
        else:
            at = self.next_ping_at
        idle = self.last_activity + policy.idle_timeout
        if idle <= now:
            idle = now + policy.idle_timeout  # subscribed and long quiet: not idle
        if idle < at:
            at = idle
        expires = self.token_expires_at
        if expires is not None and expires < at:
            at = expires
        return at
