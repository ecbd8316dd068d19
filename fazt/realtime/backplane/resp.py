"""RESP, the Redis wire protocol, sans I/O: commands encoded, replies parsed.

The ordered lane (``redis_lane``) writes its commands straight onto its own
connection: encoding them here costs one ``bytes`` per command, where
redis-py builds a command object, a pipeline entry and a packer pass per
write. ``ReplyParser`` is incremental: it takes whatever the socket gave and
returns every complete reply in it, in order.

Replies (RESP2, and RESP3 for a connection that said ``HELLO 3``): simple,
bulk and verbatim strings as ``bytes``, integers and big numbers as ``int``,
doubles as ``float``, booleans as ``bool``, arrays and sets as ``list``,
pushes as ``Push`` (a ``list``: out-of-band messages, not the answer to a
command), maps as ``dict``, nil and null as ``None``, and errors as
``ReplyError`` values (returned, not raised: one failed command among many is
that command's answer).
"""

from __future__ import annotations

from typing import Any, Final

_CRLF: Final = b"\r\n"


_BLOBS: Final = frozenset(b"$=!")
_AGGREGATES: Final = frozenset(b"*~>%")


class ReplyError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``): its text, without the dash."""

    @property
    def text(self) -> str:
        return str(self.args[0])


class Push(list[Any]):
    """A RESP3 push: a pub/sub message, or a notice Redis sends unasked (never a reply)."""


class ProtocolViolation(Exception):
    """Bytes that are not RESP2: the connection cannot be trusted any more."""


def _bulk(value: Any) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        data = repr(value).encode()
    else:
        raise TypeError(f"a Redis argument must be bytes, str or a number, not {type(value)}")
    return b"$%d\r\n%b\r\n" % (len(data), data)


def encode_command(args: tuple[Any, ...]) -> bytes:
    """One command as RESP2 (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join([_bulk(arg) for arg in args])


class ReplyParser:
    """Replies out of a byte stream; ``feed`` returns the ones that are complete."""

    __slots__ = ("_buffer", "_position")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0

    def feed(self, data: bytes) -> list[Any]:
        """Take ``data``; every reply it completed, in order. Raises ``ProtocolViolation``."""
        buffer = self._buffer
        buffer += data
        replies: list[Any] = []
        position = 0
        end = len(buffer)
        while position < end:
            parsed = self._parse(buffer, position)
            if parsed is None:
                break
            reply, position = parsed
            replies.append(reply)
        if position:
            del buffer[:position]
        return replies

    def _parse(self, buffer: bytearray, position: int) -> tuple[Any, int] | None:
        """The reply starting at ``position`` and where the next one starts, or None when
        it is not complete yet."""
        line_end = buffer.find(_CRLF, position)
        if line_end < 0:
            return None
        kind = buffer[position]
        line = bytes(buffer[position + 1 : line_end])
        after = line_end + 2
        if kind in _BLOBS:  # $ bulk string, = verbatim string, ! blob error
            size = _number(line)
            if size < 0:
                return None, after
            stop = after + size
            if len(buffer) < stop + 2:
                return None
            blob = bytes(buffer[after:stop])
            if kind == 0x21:
                return ReplyError(blob.decode("utf-8", "replace")), stop + 2
            return (blob[4:] if kind == 0x3D else blob), stop + 2  # verbatim: "txt:" first
        if kind == 0x3A or kind == 0x28:  # : integer, ( big number
            return _number(line), after
        if kind == 0x2B:  # + simple string
            return line, after
        if kind == 0x2D:  # - error
            return ReplyError(line.decode("utf-8", "replace")), after
        if kind in _AGGREGATES:  # * array, ~ set, > push, % map
            count = _number(line)
            if count < 0:
                return None, after
            if kind == 0x25:
                count *= 2
            items: list[Any] = []
            for _ in range(count):
                parsed = self._parse(buffer, after)
                if parsed is None:
                    return None
                item, after = parsed
                items.append(item)
            if kind == 0x25:
                return dict(zip(items[::2], items[1::2], strict=True)), after
            if kind == 0x3E:
                return Push(items), after
            return items, after
        if kind == 0x5F:  # _ null
            return None, after
        if kind == 0x23:  # # boolean
            return line == b"t", after
        if kind == 0x2C:  # , double
            try:
                return float(line), after
            except ValueError:
                raise ProtocolViolation(f"a malformed double from Redis: {line!r}") from None
        raise ProtocolViolation(f"unexpected reply type {chr(kind)!r} from Redis")


def _number(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolViolation(f"a malformed length or integer from Redis: {line!r}") from None
