"""The sans-I/O frame reader (``fazt/realtime/frames.py``): bytes in, events out, no socket."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.realtime.frames import (
    Close,
    Failure,
    FrameReader,
    Ping,
    Pong,
    close_frame,
    control_frame,
    is_valid_close_code,
    pong_frame,
)
from tests.realtime.rawws import client_frame, close_payload, text

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def feed_all(reader: FrameReader, data: bytes, step: int | None = None) -> list[object]:
    if step is None:
        return list(reader.feed(data))
    events: list[object] = []
    for start in range(0, len(data), step):
        events.extend(reader.feed(data[start : start + step]))
    return events


def failure(code: int) -> type:
    class _Matches:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Failure) and other.code == code

    return _Matches


# -- messages ---------------------------------------------------------------------------------
def test_every_complete_frame_of_one_recv_in_one_pass() -> None:
    data = text("héllo") + client_frame(BINARY, b"\x00\xff") + text("x" * 300) + text("y" * 70000)
    assert FrameReader(1 << 20).feed(data) == ["héllo", b"\x00\xff", "x" * 300, "y" * 70000]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_frames_split_across_many_recvs(step: int) -> None:
    data = text("héllo") + client_frame(BINARY, b"\x00\xff") + text("x" * 300) + text("z" * 70000)
    expected = ["héllo", b"\x00\xff", "x" * 300, "z" * 70000]
    assert feed_all(FrameReader(1 << 20), data, step) == expected


def test_empty_messages_and_an_empty_feed() -> None:
    reader = FrameReader(10)
    assert reader.feed(b"") == []
    assert reader.feed(text("") + client_frame(BINARY, b"")) == ["", b""]


def test_fragmented_message_with_control_frames_in_between() -> None:
    data = (
        client_frame(TEXT, b"he", fin=False)
        + client_frame(PING, b"p1")
        + client_frame(CONT, b"l", fin=False)
        + client_frame(PONG, b"")
        + client_frame(CONT, b"lo")
        + client_frame(BINARY, b"a", fin=False)
        + client_frame(CONT, b"b")
    )
    for step in (None, 1, 5):
        events = feed_all(FrameReader(100), data, step)
        assert events == [Ping(b"p1"), Pong(b""), "hello", b"ab"]


def test_a_message_in_many_fragments_and_empty_fragments() -> None:
    fragments = [client_frame(TEXT, b"", fin=False)]
    fragments += [client_frame(CONT, b"%d," % i, fin=False) for i in range(200)]
    fragments.append(client_frame(CONT, b""))
    expected = "".join(f"{i}," for i in range(200))
    assert feed_all(FrameReader(10_000), b"".join(fragments), 9) == [expected]


# -- protocol errors: 1002 -------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame",
    [
        text("x", masked=False),
        text("x", rsv=1),
        text("x", rsv=4),
        client_frame(PING, b"", rsv=2),
        *[client_frame(opcode, b"x") for opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)],
        client_frame(PING, b"p" * 126),
        client_frame(CLOSE, close_payload(1000, b"r" * 124)),
        client_frame(PING, b"p", fin=False),
        client_frame(CONT, b"nothing to continue"),
        client_frame(TEXT, b"a", fin=False) + text("b"),
        client_frame(CLOSE, b"\x03"),
    ],
)
def test_protocol_errors_fail_with_1002(frame: bytes) -> None:
    reader = FrameReader(1000)
    events = reader.feed(frame)
    assert events == [failure(1002)()] and reader.failed


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
def test_close_codes_a_client_may_not_send_fail_with_1002(code: int) -> None:
    assert not is_valid_close_code(code)
    assert FrameReader(100).feed(client_frame(CLOSE, close_payload(code))) == [failure(1002)()]


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_close_codes_a_client_may_send(code: int) -> None:
    reader = FrameReader(100)
    assert reader.feed(client_frame(CLOSE, close_payload(code, b"bye"))) == [Close(code, "bye")]
    assert reader.closed
    assert reader.feed(text("after the close")) == []  # nothing after a close


def test_an_empty_close() -> None:
    assert FrameReader(10).feed(client_frame(CLOSE)) == [Close(None, "")]


# -- UTF-8: 1007 ------------------------------------------------------------------------------
def test_invalid_utf8_fails_with_1007() -> None:
    assert FrameReader(100).feed(text(b"ok \xff")) == [failure(1007)()]
    reason = close_payload(1000, b"\xce\xba\xf4\x90\x80\x80")
    assert FrameReader(100).feed(client_frame(CLOSE, reason)) == [failure(1007)()]


def test_invalid_utf8_fails_on_the_fragment_that_carries_it() -> None:
    reader = FrameReader(100)
    assert reader.feed(client_frame(TEXT, "κό".encode(), fin=False)) == []
    # Fail fast: the bad byte arrives in a middle fragment, before the message ends.
    assert reader.feed(client_frame(CONT, b"\xed\xa0\x80", fin=False)) == [failure(1007)()]


def test_a_character_split_across_fragments_is_fine_and_a_truncated_one_is_not() -> None:
    euro = "€".encode()  # three bytes
    whole = client_frame(TEXT, euro[:1], fin=False) + client_frame(CONT, euro[1:])
    assert FrameReader(100).feed(whole) == ["€"]
    split = client_frame(TEXT, b"a" + euro[:2], fin=False) + client_frame(CONT, euro[2:] + b"b")
    assert FrameReader(100).feed(split) == ["a€b"]
    truncated = client_frame(TEXT, b"a", fin=False) + client_frame(CONT, euro[:2])
    assert FrameReader(100).feed(truncated) == [failure(1007)()]


def test_binary_messages_are_not_checked_for_utf8() -> None:
    assert FrameReader(10).feed(client_frame(BINARY, b"\xff\xfe")) == [b"\xff\xfe"]


# -- size: 1009 -------------------------------------------------------------------------------
def test_the_size_limit_is_checked_on_the_announced_length_before_the_payload() -> None:
    reader = FrameReader(1000)
    assert reader.feed(text("x" * 1000)) == ["x" * 1000]  # exactly the limit is fine
    header = text("x" * 1001)[:8]  # 2 + 2 length bytes + 4 mask bytes: no payload yet
    assert reader.feed(header) == [failure(1009)()]
    huge = bytes((0x81, 0xFF)) + struct.pack(">Q", 1 << 62) + b"mask"
    assert FrameReader(1000).feed(huge) == [failure(1009)()]


def test_the_size_limit_counts_the_fragments_so_far() -> None:
    reader = FrameReader(1000)
    assert reader.feed(client_frame(TEXT, b"a" * 600, fin=False)) == []
    assert reader.feed(client_frame(CONT, b"b" * 300, fin=False)) == []
    assert reader.feed(client_frame(CONT, b"c" * 101)[:8]) == [failure(1009)()]


def test_an_incomplete_frame_is_held_only_up_to_the_limit() -> None:
    reader = FrameReader(1000)
    frame = text("x" * 1000)
    for start in range(0, len(frame) - 1, 100):
        assert reader.feed(frame[start : min(start + 100, len(frame) - 1)]) == []
        assert reader._held <= 1000 + 14
    assert reader.feed(frame[-1:]) == ["x" * 1000]
    assert reader._chunks is None


# -- after a failure: only the client's close -------------------------------------------------
@pytest.mark.parametrize("step", [None, 1, 3])
def test_after_a_failure_only_the_close_comes_out(step: int | None) -> None:
    data = (
        text("x" * 50)
        + text("y", rsv=1)
        + text("ignored")
        + client_frame(PING, b"ignored")
        + text("y" * 5000)  # too big, skipped by its announced length
        + client_frame(CLOSE, close_payload(1002))
        + text("after the close")
    )
    events = feed_all(FrameReader(100), data, step)
    assert events == ["x" * 50, failure(1002)(), Close(1002, "")]


def test_a_refused_frame_is_skipped_across_recvs() -> None:
    reader = FrameReader(100)
    big = text("z" * 10_000)
    assert reader.feed(big[:500]) == [failure(1009)()]
    for start in range(500, len(big), 1000):
        assert reader.feed(big[start : start + 1000]) == []
    assert reader.feed(client_frame(CLOSE, close_payload(1000))) == [Close(1000, "")]


def test_a_failure_with_garbage_after_it_is_lenient_about_the_close() -> None:
    reader = FrameReader(100)
    assert reader.feed(text(b"\xff") + client_frame(CLOSE, b"\x03")) == [
        failure(1007)(),
        Close(None, ""),
    ]


# -- the same events however the bytes are cut -------------------------------------------------
_frames = st.one_of(
    st.text(max_size=300).map(text),
    st.binary(max_size=300).map(lambda data: client_frame(BINARY, data)),
    st.binary(max_size=125).map(lambda data: client_frame(PING, data)),
    st.text(min_size=2, max_size=40).map(
        lambda value: (
            client_frame(TEXT, value.encode()[:3], fin=False)
            + client_frame(PING, b"")
            + client_frame(CONT, value.encode()[3:])
        )
    ),
)


@given(st.lists(_frames, max_size=12), st.lists(st.integers(1, 400), min_size=1, max_size=30))
def test_any_cut_of_the_stream_gives_the_same_events(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frames)
    whole = FrameReader(1 << 16).feed(stream)
    reader = FrameReader(1 << 16)
    pieces: list[object] = []
    position, index = 0, 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        pieces.extend(reader.feed(stream[position : position + size]))
        position += size
        index += 1
    assert pieces == whole
    assert not any(isinstance(event, Failure) for event in whole)


# -- frames the server sends --------------------------------------------------------------------
def test_server_control_frames() -> None:
    assert close_frame(None) == b"\x88\x00"
    assert close_frame(1009, "message too big") == b"\x88\x11\x03\xf1message too big"
    long_reason = close_frame(4000, "é" * 100)  # cut to 125 bytes, on a character boundary
    assert len(long_reason) <= 127 and long_reason[4:].decode() == "é" * 61
    assert pong_frame(b"abc") == b"\x8a\x03abc"
    with pytest.raises(ValueError):
        control_frame(PING, b"x" * 126)
