"""A small reader of server WebSocket frames, shared by the load clients.

Server frames are never masked: a two-, four- or ten-byte header and a
payload. Parsing them here costs a fraction of ``websockets``' generator-based
parser, which keeps the clients off the critical path.
"""

from __future__ import annotations

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def split_head(buf: bytes) -> tuple[bytes, bytes] | None:
    """An HTTP response head (through its blank line) and the bytes after it, or
    None while the head is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    return buf[: end + 4], buf[end + 4 :]


class FrameReader:
    """Feed it bytes as they arrive; get back whole messages as (opcode, payload).

    Fragmented messages are joined (their opcode is the first fragment's);
    control frames (close, ping, pong) come back as they are.
    """

    __slots__ = ("buf", "frag")

    def __init__(self) -> None:
        self.buf = b""
        self.frag: bytes | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        b = self.buf + data if self.buf else data
        n = len(b)
        pos = 0
        out: list[tuple[int, bytes]] = []
        while n - pos >= 2:
            b0 = b[pos]
            length = b[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (b[pos + 2] << 8) | b[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(b[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > n:
                break
            opcode = b0 & 0x0F
            payload = b[pos + head : end]
            pos = end
            if opcode == TEXT and b0 & 0x80:
                out.append((TEXT, payload))
            elif opcode in (0, TEXT, 0x2):
                self.frag = (self.frag or b"") + payload
                if b0 & 0x80:
                    out.append((TEXT, self.frag))
                    self.frag = None
            else:
                out.append((opcode, payload))
        self.buf = b[pos:] if pos < n else b""
        return out

    def reset(self) -> None:
        self.buf, self.frag = b"", None
