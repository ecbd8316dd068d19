"""The head of a connection's first request, read from the socket before Tornado sees it.

A WebSocket upgrade that arrives whole with its connection (browsers and the
SDK send it in one segment, and ``TCP_DEFER_ACCEPT`` hands the connection over
once it has arrived) can be answered without Tornado's HTTP machinery: no
``IOStream``, no ``HTTP1Connection`` coroutine, no router delegate, no
``RequestHandler``. ``EdgeHTTPServer`` peeks at a new connection
(``MSG_PEEK``: nothing is consumed), and ``parse_upgrade_head`` reads the head
when it is a plain one. Whoever takes the connection then consumes exactly
the head (``consume_head``); any bytes the client sent after it stay in the
socket for the WebSocket reader.

The parser is deliberately narrow. It answers None, and the connection goes
the usual way through Tornado (which answers it as before, 400 included), for
anything but ``GET <origin-form target> HTTP/1.1`` with CRLF line ends,
visible ASCII, spaces and tabs only, header names of token characters, no
folded header lines, no body (``Content-Length`` or
``Transfer-Encoding``), and an ``Upgrade`` header. Within that subset it
reads what Tornado reads: the path and query as sent, header values stripped
of spaces and tabs, repeated headers joined with ``,``, the ``Host`` header
or ``127.0.0.1``.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

#: The end of a head, exactly as an upgrade request ends it.
HEAD_END: Final = b"\r\n\r\n"
#: Characters of a query read without percent-decoding (what ``parse_qsl`` leaves as is).
_PLAIN_QUERY: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*,;=:@/?"
)


#: A header name's characters (RFC 9110 ``tchar``).
_TOKEN: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
#: Anything but visible ASCII, space and tab (line ends are removed before the search).
_NOT_PRINTABLE: Final = re.compile(r"[^\t\x20-\x7e]")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """One upgrade request's head (see the module doc for what it holds)."""

    path: str
    query: str
    #: Header names in lower case -> value (repeated headers joined with ``,``).
    headers: dict[str, str]
    #: Bytes of the head on the wire, the blank line included.
    size: int
    #: The client's address, as ``accept()`` gave it.
    address: Any

    @property
    def host(self) -> str:
        """The Host header, or ``127.0.0.1`` without one (as Tornado's ``request.host``)."""
        return self.headers.get("host") or "127.0.0.1"

    @property
    def uri(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def remote_ip(self) -> str:
        address = self.address
        if isinstance(address, tuple) and address and isinstance(address[0], str):
            return address[0]
        return "0.0.0.0"

    def query_argument(self, name: str) -> str | None:
        """The last value of ``name`` in the query, as Tornado's ``get_query_argument``
        gives it, or None. Raises ``ValueError`` for a query this reader leaves to
        Tornado (percent-escapes, ``+``, characters outside the plain set)."""
        query = self.query
        if not query:
            return None
        if not _PLAIN_QUERY.issuperset(query):
            raise ValueError("a query with escapes is read by Tornado")
        value = None
        for key, item in parse_qsl(query, keep_blank_values=True):
            if key == name:
                value = item
        return value


def parse_upgrade_head(data: bytes, address: Any) -> RequestHead | None:
    """The head at the start of ``data`` when it is a plain upgrade request, else None."""
    end = data.find(HEAD_END)
    if end < 0 or not data.startswith(b"GET /"):
        return None
    raw = data[:end]
    if not raw.isascii():
        return None
    text = raw.decode("ascii")
    if _NOT_PRINTABLE.search(text.replace("\r\n", "")) is not None:
        return None  # a bare CR or LF, a control character: Tornado's reading counts
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1":
        return None
    target = parts[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or not _TOKEN.issuperset(name):
            return None  # malformed, or a folded continuation line
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    if "upgrade" not in headers or "content-length" in headers:
        return None
    if "transfer-encoding" in headers:
        return None
    path, _, query = target.partition("?")
    return RequestHead(path, query, headers, end + len(HEAD_END), address)


def peek_request(connection: socket.socket, size: int) -> bytes:
    """What has arrived on a new connection, up to ``size`` bytes, without consuming it."""
    try:
        return connection.recv(size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return b""


def consume_head(connection: socket.socket, head: RequestHead) -> bool:
    """Read the head off the socket (it was peeked, so it is all there); False if the
    socket did not give exactly that many bytes (it broke meanwhile)."""
    try:
        return len(connection.recv(head.size, socket.MSG_DONTWAIT)) == head.size
    except OSError:
        return False
