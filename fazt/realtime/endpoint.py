"""What the ``/_ws`` handler may ask of the realtime core: a small interface, built at start.

The handler sees neither the plugin nor the core: the plugin builds one
``Endpoint`` when it starts and the kernel passes it to every handler it
creates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fazt.kernel.app import App
from fazt.realtime.session import Session, Transport
from fazt.realtime.transport import WriteCoalescer


@dataclass(frozen=True, slots=True)
class Endpoint:
    #: Check a ``?token=`` for the app: its claims, or ``TokenError``.
    verify_token: Callable[[str, App], dict[str, Any]]
    #: May one more connection open for the app? (False: HTTP 503.)
    admit: Callable[[App], Awaitable[bool]]
    #: Register an open connection (it gets ``connected``).
    connect: Callable[[App, Transport, dict[str, Any] | None], Awaitable[Session]]
    #: One message from the client (a text message as ``str``, a binary one as ``bytes``).
    receive: Callable[[Session, str | bytes], Coroutine[Any, Any, None]]
    #: The connection closed: forget it (in the background; never blocks).
    disconnected: Callable[[Session], None]
    #: The largest frame a client of the app may send.
    max_message_bytes: Callable[[App], int]
    #: Frames a connection may have waiting before it is closed 4101.
    queue_size: int
    coalescer: WriteCoalescer
    #: ``receive`` never waits on I/O (the in-memory backplane): the connection may
    #: run it inside its read callback instead of in a Task (``connection.py``).
    inline: bool = False
