"""``request_head.parse_upgrade_head``: which heads fazt reads itself, and what it reads."""

from __future__ import annotations

import pytest

from fazt.edge.request_head import parse_upgrade_head

PLAIN = (
    b"GET /_app/chat/_ws?x=4&token=a.b-c_d HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"X-Twice: a\r\nx-twice:  b \t\r\n\r\n"
)


def test_a_plain_upgrade_head_is_read_as_tornado_reads_it() -> None:
    head = parse_upgrade_head(PLAIN + b"\x81\x85early", ("127.0.0.9", 4242))
    assert head is not None
    assert (head.path, head.query, head.uri) == (
        "/_app/chat/_ws",
        "x=4&token=a.b-c_d",
        "/_app/chat/_ws?x=4&token=a.b-c_d",
    )
    assert head.size == len(PLAIN)  # the frame after the head is not part of it
    assert head.host == "127.0.0.1:8080"
    assert head.headers["connection"] == "keep-alive, Upgrade"
    assert head.headers["x-twice"] == "a,b"  # repeated headers joined, values stripped
    assert head.remote_ip == "127.0.0.9"
    assert head.query_argument("token") == "a.b-c_d"
    assert head.query_argument("nope") is None


def test_the_last_token_counts_and_an_empty_one_is_empty() -> None:
    head = parse_upgrade_head(PLAIN.replace(b"?x=4&", b"?token=first&token&"), None)
    assert head is not None
    assert head.query_argument("token") == "a.b-c_d"
    head = parse_upgrade_head(PLAIN.replace(b"?x=4&token=a.b-c_d", b"?token"), None)
    assert head is not None and head.query_argument("token") == ""


@pytest.mark.parametrize("query", [b"?token=%61", b"?to%6ben=a", b"?token=a+b", b"?token=\xc3\xa9"])
def test_a_query_with_escapes_is_left_to_tornado(query: bytes) -> None:
    head = parse_upgrade_head(PLAIN.replace(b"?x=4&token=a.b-c_d", query), None)
    if head is not None:  # non-ASCII is refused as a whole head already
        with pytest.raises(ValueError):
            head.query_argument("token")


@pytest.mark.parametrize(
    "data",
    [
        PLAIN[:-2],  # not whole yet
        PLAIN.replace(b"GET ", b"POST "),
        PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        PLAIN.replace(b"GET /", b"GET http://h/"),
        b"\r\n" + PLAIN,
        PLAIN.replace(b"Upgrade: websocket\r\n", b""),  # not an upgrade
        PLAIN.replace(b"X-Twice: a\r\n", b"X-Twice: a\r\n folded\r\n"),
        PLAIN.replace(b"X-Twice: a\r\n", b"X-Twice: a\n"),  # a bare LF
        PLAIN.replace(b"X-Twice: a\r\n", b"X-Twice: a\rb\r\n"),  # a bare CR
        PLAIN.replace(b"X-Twice: a\r\n", b"X-Twice : a\r\n"),
        PLAIN.replace(b"X-Twice: a\r\n", b"no colon\r\n"),
        PLAIN.replace(b"X-Twice: a\r\n", b"X(Twice): a\r\n"),  # not a token
        PLAIN.replace(b"X-Twice: a\r\n", b"X-Twice: a\x01b\r\n"),  # a control character
        PLAIN.replace(b"X-Twice: a\r\n", b"X-Twice: a\x7fb\r\n"),
        PLAIN.replace(b"X-Twice: a\r\n", b"Content-Length: 0\r\n"),
        PLAIN.replace(b"X-Twice: a\r\n", b"Transfer-Encoding: chunked\r\n"),
        PLAIN.replace(b"X-Twice: a", "X-Twice: \u00e9".encode()),
        PLAIN.replace(b"GET /_app/chat/_ws", b"GET  /_app/chat/_ws"),
    ],
)
def test_anything_unusual_is_left_to_tornado(data: bytes) -> None:
    assert parse_upgrade_head(data, None) is None
