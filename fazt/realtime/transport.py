"""How the hub writes to a connection: the ``Transport`` protocol and its fast Tornado form.

The hub only ever calls ``send_frame(frame)`` with complete WebSocket frame
bytes (built once per broadcast by ``protocol.text_frame``) and ``close``.
Neither blocks, neither raises: a transport that cannot deliver closes itself
and the handler later reports the disconnect to the hub.
"""

from __future__ import annotations

from typing import Protocol


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
