"""RESP2, the Redis wire protocol, sans I/O: commands encoded, replies parsed.

The ordered lane (``redis_lane``) writes its commands straight onto its own
connection: encoding them here costs one ``bytes`` per command, where
redis-py builds a command object, a pipeline entry and a packer pass per
write. ``ReplyParser`` is incremental: it takes whatever the socket gave and
returns every complete reply in it, in order.

Replies: simple strings and bulk strings as ``bytes``, integers as ``int``,
arrays as ``list``, nil as ``None``, and errors as ``ReplyError`` values
(returned, not raised: one failed command among many is that command's answer).
"""

from __future__ import annotations

from typing import Any, Final

_CRLF: Final = b"\r\n"


class ReplyError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``): its text, without the dash."""

    @property
    def text(self) -> str:
        return str(self.args[0])


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
        if kind == 0x24:  # $ bulk string
            size = _number(line)
            if size < 0:
                return None, after
            stop = after + size
            if len(buffer) < stop + 2:
                return None
            return bytes(buffer[after:stop]), stop + 2
        if kind == 0x3A:  # : integer
            return _number(line), after
        if kind == 0x2B:  # + simple string
            return line, after
        if kind == 0x2D:  # - error
            return ReplyError(line.decode("utf-8", "replace")), after
        if kind == 0x2A:  # * array
            count = _number(line)
            if count < 0:
                return None, after
            items: list[Any] = []
            for _ in range(count):
                parsed = self._parse(buffer, after)
                if parsed is None:
                    return None
                item, after = parsed
                items.append(item)
            return items, after
        raise ProtocolViolation(f"unexpected reply type {chr(kind)!r} from Redis")


def _number(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolViolation(f"a malformed length or integer from Redis: {line!r}") from None
