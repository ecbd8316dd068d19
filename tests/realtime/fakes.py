"""Test doubles for the hub: a transport that records writes, a settable clock."""

from __future__ import annotations

import json
from typing import Any

from fazt.realtime.protocol import text_frame
from fazt.realtime.session import Session


def decode_frame(frame: bytes) -> dict[str, Any]:
    """Decode one unmasked server text frame back into its JSON message."""
    value: dict[str, Any] = json.loads(frame_payload(frame))
    return value


def frame_payload(frame: bytes) -> bytes:
    """The payload of one complete, unmasked, final server text frame."""
    assert frame[0] == 0x81, "final text frame"
    length = frame[1]
    offset = 2
    if length == 126:
        length = int.from_bytes(frame[2:4], "big")
        offset = 4
    elif length == 127:
        length = int.from_bytes(frame[2:10], "big")
        offset = 10
    body = frame[offset:]
    assert len(body) == length
    return body


def split_frames(data: bytes) -> list[bytes]:
    """Complete server frames joined in one write (a recovery sends them so), one by one."""
    frames: list[bytes] = []
    while data:
        length, offset = data[1], 2
        if length == 126:
            length, offset = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(data[2:10], "big"), 10
        frames.append(data[: offset + length])
        data = data[offset + length :]
    return frames


class FakeTransport:
    """Records frames and closes; ``send_frame`` after close is ignored (as in the real one).

    Several frames written at once are recorded one by one.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed_with: tuple[int, str] | None = None
        self.aborted = False

    def send_frame(self, frame: bytes) -> None:
        if self.closed_with is None and not self.aborted:
            self.frames.extend(split_frames(frame))

    def close(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)

    def abort(self) -> None:
        self.aborted = True

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [decode_frame(frame) for frame in self.frames]

    def take(self) -> list[dict[str, Any]]:
        """The messages received since the last ``take``."""
        messages = self.messages
        self.frames.clear()
        return messages

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message["type"] == kind]


def fake_session(client_id: str, app_uuid: str = "app") -> tuple[Session, FakeTransport]:
    """A bare session on a ``FakeTransport`` (for the hub's and the feeds' fan-out)."""
    transport = FakeTransport()
    session = Session(
        client_id=client_id,
        app_uuid=app_uuid,
        transport=transport,
        now=0.0,
        connected_at_ms=0,
        ping_interval=30.0,
        messages_per_second=10,
    )
    return session, transport


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


__all__ = [
    "Clock",
    "FakeTransport",
    "decode_frame",
    "fake_session",
    "frame_payload",
    "split_frames",
    "text_frame",
]
