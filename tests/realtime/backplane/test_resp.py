"""The RESP encoder and the incremental reply parser of the ordered lane (no Redis needed)."""

from __future__ import annotations

import pytest

from fazt.realtime.backplane.resp import (
    ProtocolViolation,
    Push,
    ReplyError,
    ReplyParser,
    encode_command,
)


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command((b"PUBLISH", "t\u00e9", b"a\r\nb")) == (
        b"*3\r\n$7\r\nPUBLISH\r\n$3\r\nt\xc3\xa9\r\n$4\r\na\r\nb\r\n"
    )
    assert encode_command(("EVALSHA", "abc", 0, 1.5)) == (
        b"*4\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n0\r\n$3\r\n1.5\r\n"
    )
    with pytest.raises(TypeError):
        encode_command(("SET", True))


REPLIES = (
    b"+OK\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*2\r\n:1\r\n$2\r\ne1\r\n*-1\r\n"
    b"-NOSCRIPT No matching script\r\n*0\r\n"
    # RESP3, for a connection that said HELLO 3
    b"_\r\n#t\r\n,2.5\r\n%1\r\n+k\r\n:7\r\n~1\r\n:3\r\n=8\r\ntxt:abcd\r\n(12345678901234567890\r\n"
    b"!5\r\nERR x\r\n"
)


def _check(replies: list[object]) -> None:
    assert replies[:6] == [b"OK", 42, b"he\r\nl", None, [1, b"e1"], None]
    assert isinstance(replies[6], ReplyError)
    assert replies[6].text == "NOSCRIPT No matching script"
    assert replies[7:15] == [[], None, True, 2.5, {b"k": 7}, [3], b"abcd", 12345678901234567890]
    assert isinstance(replies[15], ReplyError) and replies[15].text == "ERR x"
    assert len(replies) == 16


def test_replies_whole_and_byte_by_byte_are_the_same() -> None:
    _check(ReplyParser().feed(REPLIES))
    parser = ReplyParser()
    replies: list[object] = []
    for i in range(len(REPLIES)):
        replies += parser.feed(REPLIES[i : i + 1])
    _check(replies)


def test_a_push_is_a_list_apart_from_replies() -> None:
    replies = ReplyParser().feed(b">3\r\n$7\r\nmessage\r\n$1\r\nt\r\n$2\r\n{}\r\n*1\r\n:1\r\n")
    assert replies == [[b"message", b"t", b"{}"], [1]]
    assert isinstance(replies[0], Push) and not isinstance(replies[1], Push)


def test_an_incomplete_reply_waits_for_the_rest() -> None:
    parser = ReplyParser()
    assert parser.feed(b"*2\r\n:1\r\n$3\r\nab") == []
    assert parser.feed(b"c\r\n:5") == [[1, b"abc"]]
    assert parser.feed(b"\r\n") == [5]


@pytest.mark.parametrize("garbage", [b"?what\r\n", b":12x\r\n", b"$abc\r\n", b",x\r\n"])
def test_bytes_that_are_not_resp_are_a_protocol_violation(garbage: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        ReplyParser().feed(garbage)
