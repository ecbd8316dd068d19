"""WebSocket frames from a client, sans-I/O: bytes in, messages and control events out.

``FrameReader.feed(data)`` takes whatever one ``recv`` returned and parses
every complete frame it holds in one pass (RFC 6455 section 5). It returns the
events in order: a ``str`` for a text message, ``bytes`` for a binary message,
and ``Ping``, ``Pong``, ``Close`` or ``Failure`` for the rest. No socket, no
event loop, no Future: the connection (``connection.py``) feeds it and acts on
what comes out, and the tests feed it plain bytes.

What the reader refuses, and the close code the server then sends
(``Failure.code``):

* **1002** (protocol error): a frame from the client that is not masked; a
  reserved bit set (no extension is ever negotiated); a reserved opcode; a
  control frame that is fragmented or carries more than 125 bytes; a
  continuation frame with no message to continue, or a new message before the
  last one ended; a close frame whose body is one byte, or whose code a client
  may not send;
* **1007** (invalid frame payload data): a text message, or a close reason, that
  is not valid UTF-8. Fragmented text is checked fragment by fragment, so a
  message fails on the fragment where the bad byte arrives (a valid multi-byte
  character split across fragments is fine);
* **1009** (message too big): a message bigger than ``max_message_bytes``,
  decided on the length a frame announces, before its payload is buffered
  (for a fragmented message: the fragments so far plus the announced one).

After a ``Failure`` the reader keeps the frame boundaries (the failing frame's
payload is skipped by its announced length) but yields nothing more except the
client's ``Close``, so the connection can finish the closing handshake. After a
``Close`` it yields nothing at all. Memory is bounded: an incomplete frame is
held only while it fits in ``max_message_bytes`` plus its header.
"""

from __future__ import annotations

import codecs
import struct
from typing import Final, NamedTuple

from fazt.realtime.protocol import CLOSE_MESSAGE_TOO_BIG
from fazt.realtime.tornado_internals import websocket_mask

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

#: The WebSocket layer's own close codes (RFC 6455 7.4.1); the realtime protocol's
#: codes, 1009 among them, live in ``protocol.py``.
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_INVALID_DATA: Final = 1007
CLOSE_TOO_BIG: Final = CLOSE_MESSAGE_TOO_BIG

#: Largest payload of a control frame (RFC 6455 5.5).
MAX_CONTROL_PAYLOAD: Final = 125

_unpack_16: Final = struct.Struct(">H").unpack_from
_unpack_64: Final = struct.Struct(">Q").unpack_from
_utf8_decoder: Final = codecs.getincrementaldecoder("utf-8")


class Ping(NamedTuple):
    """A ping from the client: answer with a pong carrying ``data``."""

    data: bytes


class Pong(NamedTuple):
    """A pong from the client (unsolicited or not): nothing to do."""

    data: bytes


class Close(NamedTuple):
    """The client's close frame. ``code`` is None for an empty close body."""

    code: int | None
    reason: str


class Failure(NamedTuple):
    """The client broke the protocol: close the connection with ``code``."""

    code: int
    reason: str


Event = str | bytes | Ping | Pong | Close | Failure


def is_valid_close_code(code: int) -> bool:
    """May a peer send ``code`` in a close frame? (RFC 6455 7.4, IANA registry)."""
    if 3000 <= code <= 4999:
        return True  # registered (3xxx) and private (4xxx) codes
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006)


class FrameReader:
    """Parses client frames; one per connection. See the module doc for the rules."""

    __slots__ = (
        "_chunks",
        "_closed",
        "_decoder",
        "_failed",
        "_fragments",
        "_fragments_size",
        "_held",
        "_need",
        "_opcode",
        "_skip",
        "max_message_bytes",
    )

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        #: Bytes of an incomplete frame, kept until ``_need`` bytes are held.
        self._chunks: list[bytes] | None = None
        self._held = 0
        self._need = 0
        #: Payload bytes still to discard (a refused frame announced them).
        self._skip = 0
        #: The message being reassembled from fragments (None: no message open).
        self._fragments: list[bytes | str] | None = None
        self._fragments_size = 0
        self._opcode = OP_TEXT
        self._decoder: codecs.IncrementalDecoder | None = None
        self._failed = False
        self._closed = False

    @property
    def failed(self) -> bool:
        """A ``Failure`` was returned: only the client's ``Close`` comes out now."""
        return self._failed

    @property
    def closed(self) -> bool:
        """The client's ``Close`` was returned: nothing more comes out."""
        return self._closed

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` (the next bytes from the client); the events it completes."""
        events: list[Event] = []
        if self._closed or not data:
            return events
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return events
            data = data[self._skip :]
            self._skip = 0
        chunks = self._chunks
        if chunks is not None:
            chunks.append(data)
            self._held += len(data)
            if self._held < self._need:
                return events
            data = b"".join(chunks)
            self._chunks = None
        end = len(data)
        pos = 0
        limit = self.max_message_bytes
        while end - pos >= 2:
            first = data[pos]
            second = data[pos + 1]
            length = second & 0x7F
            head = pos + 6  # where the payload starts: 2 header bytes and the 4-byte mask
            if length == 126:
                if end - pos < 4:
                    break
                length = _unpack_16(data, pos + 2)[0]
                head += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = _unpack_64(data, pos + 2)[0]
                head += 8
            if (
                first == 0x81
                and second & 0x80
                and length <= limit
                and self._fragments is None
                and not self._failed
            ):
                # The common case: a whole masked text message in one frame.
                if head + length > end:
                    break
                payload = websocket_mask(data[head - 4 : head], data[head : head + length])
                pos = head + length
                try:
                    events.append(payload.decode())
                except UnicodeDecodeError:
                    events.append(Failure(CLOSE_INVALID_DATA, "invalid UTF-8"))
                    self._failed = True
                continue
            if self._failed:
                pos = self._after_failure(data, pos, head, first, second, length, events)
                if pos < 0:
                    return events
                continue
            refusal = self._refusal(first, second, length)
            if refusal is not None:
                events.append(refusal)
                self._failed = True
                # Skip the refused frame by the length it announced.
                pos = head - (0 if second & 0x80 else 4) + length
                if pos > end:
                    self._skip = pos - end
                    return events
                continue
            if head + length > end:
                break
            payload = websocket_mask(data[head - 4 : head], data[head : head + length])
            pos = head + length
            event = self._frame(first, payload)
            if event is not None:
                events.append(event)
                if type(event) is Close:
                    self._closed = True
                    return events
                if type(event) is Failure:
                    self._failed = True
        if pos < end:
            rest = data[pos:] if pos else data
            self._chunks = [rest]
            self._held = len(rest)
            self._need = _bytes_needed(rest)
        return events

    def _after_failure(
        self,
        data: bytes,
        pos: int,
        head: int,
        first: int,
        second: int,
        length: int,
        events: list[Event],
    ) -> int:
        """Closing after a failure: skip every frame but the client's close.

        Returns where the next frame starts, ``len(data)`` when this frame is
        incomplete (it is held), or -1 when nothing more is to be parsed.
        """
        end = len(data)
        masked = second & 0x80
        if first & 0x0F == OP_CLOSE and masked and length <= MAX_CONTROL_PAYLOAD:
            if head + length > end:
                self._chunks = [data[pos:]]
                self._held = end - pos
                self._need = head - pos + length
                return -1
            body = websocket_mask(data[head - 4 : head], data[head : head + length])
            events.append(_lenient_close(body))
            self._closed = True
            return -1
        next_frame = head - (0 if masked else 4) + length
        if next_frame > end:
            self._skip = next_frame - end
            return -1
        return next_frame

    def _refusal(self, first: int, second: int, length: int) -> Failure | None:
        """What is wrong with a frame, judged on its header alone (None: nothing)."""
        opcode = first & 0x0F
        if first & 0x70:
            return Failure(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not second & 0x80:
            return Failure(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        if opcode & 0x08:
            if opcode > OP_PONG:
                return Failure(CLOSE_PROTOCOL_ERROR, "reserved opcode")
            if not first & 0x80:
                return Failure(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                return Failure(CLOSE_PROTOCOL_ERROR, "control frame too long")
            return None
        if opcode > OP_BINARY:
            return Failure(CLOSE_PROTOCOL_ERROR, "reserved opcode")
        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                return Failure(CLOSE_PROTOCOL_ERROR, "no message to continue")
            if self._fragments_size + length > self.max_message_bytes:
                return Failure(CLOSE_TOO_BIG, "message too big")
            return None
        if self._fragments is not None:
            return Failure(CLOSE_PROTOCOL_ERROR, "a new message before the last one ended")
        if length > self.max_message_bytes:
            return Failure(CLOSE_TOO_BIG, "message too big")
        return None

    def _frame(self, first: int, payload: bytes) -> Event | None:
        """One complete, well-formed frame: the event it makes, if any."""
        opcode = first & 0x0F
        final = first & 0x80
        if opcode == OP_TEXT:
            if final:
                try:
                    return payload.decode()
                except UnicodeDecodeError:
                    return Failure(CLOSE_INVALID_DATA, "invalid UTF-8")
            return self._start(OP_TEXT, payload)
        if opcode == OP_BINARY:
            if final:
                return payload
            return self._start(OP_BINARY, payload)
        if opcode == OP_CONTINUATION:
            return self._continue(payload, final)
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        return _close(payload)

    def _start(self, opcode: int, payload: bytes) -> Event | None:
        """The first fragment of a message."""
        self._opcode = opcode
        self._fragments = []
        self._fragments_size = 0
        self._decoder = _utf8_decoder() if opcode == OP_TEXT else None
        return self._continue(payload, 0)

    def _continue(self, payload: bytes, final: int) -> Event | None:
        fragments = self._fragments
        assert fragments is not None  # checked by _refusal
        self._fragments_size += len(payload)
        decoder = self._decoder
        if decoder is not None:
            try:
                fragments.append(decoder.decode(payload, bool(final)))
            except UnicodeDecodeError:
                return Failure(CLOSE_INVALID_DATA, "invalid UTF-8")
        else:
            fragments.append(payload)
        if not final:
            return None
        self._fragments = None
        self._decoder = None
        if decoder is not None:
            return "".join(fragments)  # type: ignore[arg-type]
        return b"".join(fragments)  # type: ignore[arg-type]


def _bytes_needed(rest: bytes) -> int:
    """How many bytes must be held before the incomplete frame at the start of ``rest``
    is complete (its header's size while the header itself is incomplete)."""
    if len(rest) < 2:
        return 2
    length = rest[1] & 0x7F
    if length < 126:
        return 6 + length
    if length == 126:
        return 8 + _unpack_16(rest, 2)[0] if len(rest) >= 4 else 4
    return 14 + _unpack_64(rest, 2)[0] if len(rest) >= 10 else 10


def _close(body: bytes) -> Close | Failure:
    """The event for a well-formed close frame's body (RFC 6455 5.5.1, 7.4)."""
    if not body:
        return Close(None, "")
    if len(body) == 1:
        return Failure(CLOSE_PROTOCOL_ERROR, "close frame body of one byte")
    code = _unpack_16(body)[0]
    if not is_valid_close_code(code):
        return Failure(CLOSE_PROTOCOL_ERROR, "invalid close code")
    try:
        reason = body[2:].decode()
    except UnicodeDecodeError:
        return Failure(CLOSE_INVALID_DATA, "invalid UTF-8 in the close reason")
    return Close(code, reason)


def _lenient_close(body: bytes) -> Close:
    """The client's close after a failure: the connection ends whatever it says."""
    if len(body) < 2:
        return Close(None, "")
    return Close(_unpack_16(body)[0], body[2:].decode(errors="replace"))


# -- frames the server sends (never masked) ------------------------------------------
def control_frame(opcode: int, payload: bytes) -> bytes:
    """A final control frame (close, ping or pong) carrying at most 125 bytes."""
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("a control frame carries at most 125 bytes")
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int | None, reason: str = "") -> bytes:
    """A close frame with ``code`` and ``reason`` (cut to fit 125 bytes); empty for None."""
    if code is None:
        return control_frame(OP_CLOSE, b"")
    encoded = reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    return control_frame(OP_CLOSE, struct.pack(">H", code) + encoded)


def pong_frame(data: bytes) -> bytes:
    """The pong that answers a ping carrying ``data``."""
    return control_frame(OP_PONG, data)
