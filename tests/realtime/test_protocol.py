"""The sans-I/O protocol: parsing, encoding and framing, no sockets."""

from __future__ import annotations

import json

import pytest

from fazt.realtime import protocol
from fazt.realtime.channels import MAX_CHANNEL_LENGTH
from fazt.realtime.protocol import ProtocolError, parse
from tests.realtime.fakes import decode_frame, frame_payload


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"subscribe","channel":"chat"}', protocol.Subscribe("chat")),
        ('{"type":"unsubscribe","channel":"a:b"}', protocol.Unsubscribe("a:b")),
        ('{"type":"members","channel":"presence-x"}', protocol.Members("presence-x")),
        ('{"type":"message","channel":"c","data":{"a":1}}', protocol.Publish("c", {"a": 1})),
        ('{"type":"message","channel":"c","data":null}', protocol.Publish("c", None)),
        ('{"type":"auth","token":"abc"}', protocol.Auth("abc")),
        ('{"type":"ping"}', protocol.Ping()),
        ('{"type":"pong","extra":1}', protocol.Pong()),
        (b'{"type":"ping"}', protocol.Ping()),
    ],
)
def test_parse_valid(frame: str | bytes, expected: protocol.ClientMessage) -> None:
    assert parse(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", protocol.INVALID_JSON),
        ("", protocol.INVALID_JSON),
        ('{"type":"ping"', protocol.INVALID_JSON),
        ('{"type":"message","channel":"c","data":NaN}', protocol.INVALID_JSON),
        ('{"type":"message","channel":"c","data":1e400}', protocol.INVALID_JSON),
        ('{"type":"message","channel":"c","data":[-1E999]}', protocol.INVALID_JSON),
        ('{"type":"message","channel":"c","data":"\\ud800"}', protocol.INVALID_JSON),
        ('{"type":"message","channel":"c","data":{"\\udfff":1}}', protocol.INVALID_JSON),
        ('{"type":"ping","extra":"\\udbff\\u0041"}', protocol.INVALID_JSON),
        (b'{"type":"ping","x":"\xed\xa0\x80"}', protocol.INVALID_JSON),  # encoded surrogate
        ('{"type":"auth","token":"\\ud800"}', protocol.INVALID_JSON),
        (
            '{"type":"message","channel":"c","data":' + "[" * 65 + "]" * 65 + "}",
            protocol.INVALID_JSON,
        ),
        ("[" * 100_000, protocol.INVALID_JSON),
        (b"\xff\xfe", protocol.INVALID_JSON),
        ("[]", protocol.INVALID_MESSAGE),
        ('"subscribe"', protocol.INVALID_MESSAGE),
        ("42", protocol.INVALID_MESSAGE),
        ("null", protocol.INVALID_MESSAGE),
        ("{}", protocol.INVALID_MESSAGE),
        ('{"type":1}', protocol.INVALID_MESSAGE),
        ('{"type":"subscribe"}', protocol.INVALID_MESSAGE),
        ('{"type":"subscribe","channel":5}', protocol.INVALID_MESSAGE),
        ('{"type":"subscribe","channel":["a"]}', protocol.INVALID_MESSAGE),
        ('{"type":"message","channel":"c"}', protocol.INVALID_MESSAGE),
        ('{"type":"auth"}', protocol.INVALID_MESSAGE),
        ('{"type":"auth","token":""}', protocol.INVALID_MESSAGE),
        ('{"type":"auth","token":7}', protocol.INVALID_MESSAGE),
        ('{"type":"nope"}', protocol.UNKNOWN_TYPE),
        ('{"type":"SUBSCRIBE","channel":"c"}', protocol.UNKNOWN_TYPE),
        ('{"type":"subscribe","channel":""}', protocol.INVALID_CHANNEL),
        ('{"type":"subscribe","channel":"a b"}', protocol.INVALID_CHANNEL),
        ('{"type":"subscribe","channel":"../x"}', protocol.INVALID_CHANNEL),
        ('{"type":"subscribe","channel":"caf\\u00e9"}', protocol.INVALID_CHANNEL),
        ('{"type":"subscribe","channel":"a\\u0000"}', protocol.INVALID_CHANNEL),
        ('{"type":"subscribe","channel":"chat*"}', protocol.INVALID_CHANNEL),
        (json.dumps({"type": "subscribe", "channel": "x" * 201}), protocol.INVALID_CHANNEL),
        (json.dumps({"type": "auth", "token": "t" * 9000}), protocol.UNAUTHORIZED),
    ],
)
def test_parse_refusals(frame: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(frame)
    assert caught.value.code == code
    assert caught.value.code in protocol.ERROR_CODES
    assert caught.value.text


def test_a_frame_that_is_not_strict_json_says_what_and_where() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse('{"type":"message","channel":"c","data":{"user":{"name":"\\ud800"}}}')
    assert caught.value.text == (
        "frame is not strict JSON: a string that is not valid Unicode (lone surrogate) "
        "at message.data.user.name"
    )
    with pytest.raises(ProtocolError) as caught:
        parse('{"type":"message","channel":"c","data":[1, 2e400]}')
    assert (
        caught.value.text
        == "frame is not strict JSON: a number that is not finite at message.data[1]"
    )
    # A hostile key is quoted in the error only so far.
    with pytest.raises(ProtocolError) as caught:
        parse('{"type":"ping","' + "k" * 5000 + '\\ud800":1}')
    assert len(caught.value.text) == protocol.MAX_ERROR_TEXT
    # Valid pairs, big integers and 64 levels of nesting are fine.
    message = parse('{"type":"message","channel":"c","data":["\\ud83d\\ude00", 1e308]}')
    assert message == protocol.Publish("c", ["\U0001f600", 1e308])
    deep = "[" * 63 + "]" * 63
    assert parse('{"type":"message","channel":"c","data":' + deep + "}").channel == "c"


def test_channel_name_bounds() -> None:
    assert parse(json.dumps({"type": "subscribe", "channel": "x" * 200})) == protocol.Subscribe(
        "x" * 200
    )
    allowed = "Az09_-=@,.;:"
    assert parse(json.dumps({"type": "subscribe", "channel": allowed})) == protocol.Subscribe(
        allowed
    )


def test_hostile_channel_name_is_not_echoed_in_full() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(json.dumps({"type": "subscribe", "channel": "<script>" * 100}))
    assert caught.value.channel is not None and len(caught.value.channel) <= 64
    with pytest.raises(ProtocolError) as caught:
        parse(json.dumps({"type": "subscribe", "channel": "a\nb"}))
    assert caught.value.channel is None


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_lengths_round_trip(size: int) -> None:
    """Payloads of exactly each size around the 7-bit, 16-bit and 64-bit length forms."""
    payload = bytes(ord("a") + i % 26 for i in range(size))
    frame = protocol.text_frame(payload)
    assert len(payload) == size
    assert frame_payload(frame) == payload
    header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(frame) == header + size


@pytest.mark.parametrize("size", [125, 126, 127, 65535, 65536])
def test_a_message_of_exactly_each_boundary_size_decodes(size: int) -> None:
    empty = protocol.encode({"type": "message", "data": ""})
    payload = protocol.encode({"type": "message", "data": "x" * (size - len(empty))})
    assert len(payload) == size
    assert decode_frame(protocol.text_frame(payload)) == json.loads(payload)


def test_text_frame_header_bytes() -> None:
    assert protocol.text_frame(b"{}") == b"\x81\x02{}"
    assert protocol.text_frame(b"a" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert protocol.text_frame(b"a" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


def test_message_payload_shape() -> None:
    payload = protocol.message_payload("chat", {"t": "é"}, 123)
    assert json.loads(payload) == {
        "type": "message",
        "channel": "chat",
        "data": {"t": "é"},
        "timestamp": 123,
    }
    assert "é".encode() in payload  # UTF-8, not \\u escapes
    with_sender = json.loads(protocol.message_payload("c", 1, 5, "cid"))
    assert with_sender["from"] == "cid"
    assert json.loads(protocol.app_message_payload([1], 9)) == {
        "type": "message",
        "data": [1],
        "timestamp": 9,
    }


def test_encode_refuses_non_json() -> None:
    with pytest.raises(ValueError):
        protocol.encode({"x": float("nan")})
    with pytest.raises(TypeError):
        protocol.encode({"x": object()})


def test_error_payload() -> None:
    assert json.loads(protocol.error_payload("forbidden", "no", "c")) == {
        "type": "error",
        "code": "forbidden",
        "error": "no",
        "channel": "c",
    }
    assert "channel" not in json.loads(protocol.error_payload("invalid_json", "bad"))


def test_close_codes_have_reasons() -> None:
    codes = [value for name, value in vars(protocol).items() if name.startswith("CLOSE_")]
    codes = [code for code in codes if isinstance(code, int)]
    assert sorted(codes) == sorted(protocol.CLOSE_REASONS)


def test_every_server_frame_shape() -> None:
    assert decode_frame(protocol.connected_frame("c1", None)) == {
        "type": "connected",
        "clientId": "c1",
    }
    assert decode_frame(protocol.connected_frame("c1", {"id": "u"})) == {
        "type": "connected",
        "clientId": "c1",
        "user": {"id": "u"},
    }
    assert decode_frame(protocol.authenticated_frame({"id": "u", "name": "U"})) == {
        "type": "authenticated",
        "user": {"id": "u", "name": "U"},
    }
    assert decode_frame(protocol.subscribed_frame("c")) == {"type": "subscribed", "channel": "c"}
    assert decode_frame(protocol.subscribed_frame("presence-c", [{"id": "u"}])) == {
        "type": "subscribed",
        "channel": "presence-c",
        "members": [{"id": "u"}],
    }
    assert decode_frame(protocol.unsubscribed_frame("c")) == {
        "type": "unsubscribed",
        "channel": "c",
    }
    assert decode_frame(protocol.unsubscribed_frame("c", "token_expired")) == {
        "type": "unsubscribed",
        "channel": "c",
        "reason": "token_expired",
    }
    assert decode_frame(protocol.members_frame("c", [])) == {
        "type": "members",
        "channel": "c",
        "members": [],
    }
    assert decode_frame(protocol.kicked_frame("spam")) == {"type": "kicked", "reason": "spam"}
    assert json.loads(protocol.presence_payload("presence-c", "join", {"id": "u"})) == {
        "type": "presence",
        "channel": "presence-c",
        "event": "join",
        "client": {"id": "u"},
    }
    assert decode_frame(protocol.error_frame("forbidden", "no", "c")) == {
        "type": "error",
        "code": "forbidden",
        "error": "no",
        "channel": "c",
    }
    for constant, kind in (
        (protocol.PING_FRAME, "ping"),
        (protocol.PONG_FRAME, "pong"),
        (protocol.SERVER_RESTART_FRAME, "server_restart"),
    ):
        assert decode_frame(constant) == {"type": kind}
    assert protocol.close_reason(protocol.CLOSE_KICKED) == "kicked"
    assert protocol.close_reason(1000) == ""


def test_the_channel_name_error_quotes_the_one_length_bound() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(json.dumps({"type": "subscribe", "channel": "x" * (MAX_CHANNEL_LENGTH + 1)}))
    assert caught.value.text == (
        f"channel names are 1-{MAX_CHANNEL_LENGTH} characters from A-Z a-z 0-9 _ - = @ , . ; :"
    )
