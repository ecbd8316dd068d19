"""The history parts of the sans-I/O protocol: ``since``, ``history``, numbered messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fazt.realtime import protocol
from fazt.realtime.backplane.history import StreamPosition
from tests.realtime.fakes import decode_frame


def test_a_subscribe_with_since_and_a_history_request_parse() -> None:
    since = {"offset": 3, "epoch": "ab12"}
    assert protocol.parse(json.dumps({"type": "subscribe", "channel": "c"})) == (
        protocol.Subscribe("c", None)
    )
    assert protocol.parse(json.dumps({"type": "subscribe", "channel": "c", "since": since})) == (
        protocol.Subscribe("c", StreamPosition(3, "ab12"))
    )
    assert protocol.parse('{"type":"history","channel":"c"}') == protocol.History("c")
    assert protocol.parse('{"type":"history","channel":"c","limit":5}') == (
        protocol.History("c", 5)
    )
    request = json.dumps({"type": "history", "channel": "c", "since": {**since, "offset": 0}})
    assert protocol.parse(request) == protocol.History("c", None, StreamPosition(0, "ab12"))


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe", "channel": "c", "since": 3},
        {"type": "subscribe", "channel": "c", "since": {"offset": -1, "epoch": "e"}},
        {"type": "subscribe", "channel": "c", "since": {"offset": 1.5, "epoch": "e"}},
        {"type": "subscribe", "channel": "c", "since": {"offset": True, "epoch": "e"}},
        {"type": "subscribe", "channel": "c", "since": {"offset": 2**53, "epoch": "e"}},
        {"type": "subscribe", "channel": "c", "since": {"offset": 1}},
        {"type": "subscribe", "channel": "c", "since": {"offset": 1, "epoch": ""}},
        {"type": "subscribe", "channel": "c", "since": {"offset": 1, "epoch": "e" * 65}},
        {"type": "subscribe", "channel": "c", "since": {"offset": 1, "epoch": 7}},
        {"type": "history", "channel": "c", "limit": 0},
        {"type": "history", "channel": "c", "limit": "5"},
        {"type": "history", "channel": "c", "limit": False},
        {"type": "history", "channel": "c", "limit": 2, "since": {"offset": 1, "epoch": "e"}},
        {"type": "history"},
    ],
)
def test_bad_positions_and_limits_are_invalid_message(message: dict[str, Any]) -> None:
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse(json.dumps(message))
    assert refused.value.code == protocol.INVALID_MESSAGE


def test_a_numbered_message_is_the_publication_under_the_message_prefix() -> None:
    head = protocol.publication_head({"text": "héllo"}, 1700, "client-1")
    prefix = protocol.message_prefix("room-1")
    publication = head + b"7}"
    assert json.loads(publication) == {
        "data": {"text": "héllo"},
        "timestamp": 1700,
        "from": "client-1",
        "offset": 7,
    }
    message = json.loads(protocol.numbered_message(prefix, publication))
    assert message == {"type": "message", "channel": "room-1", **json.loads(publication)}
    # Without history: the same bytes message_payload builds, no offset.
    assert protocol.unnumbered_message(prefix, head) == protocol.message_payload(
        "room-1", {"text": "héllo"}, 1700, "client-1"
    )


def test_history_and_subscribed_frames() -> None:
    position = StreamPosition(9, "e1")
    publications = (b'{"data":1,"timestamp":2,"offset":8}', b'{"data":2,"timestamp":3,"offset":9}')
    assert decode_frame(protocol.history_frame("c", publications, position)) == {
        "type": "history",
        "channel": "c",
        "publications": [
            {"data": 1, "timestamp": 2, "offset": 8},
            {"data": 2, "timestamp": 3, "offset": 9},
        ],
        "offset": 9,
        "epoch": "e1",
    }
    assert decode_frame(protocol.history_frame("c", (), StreamPosition(0, "e"))) == {
        "type": "history",
        "channel": "c",
        "publications": [],
        "offset": 0,
        "epoch": "e",
    }
    frame = protocol.subscribed_frame("c", [], position=position, recovered=True)
    assert decode_frame(frame) == {
        "type": "subscribed",
        "channel": "c",
        "members": [],
        "offset": 9,
        "epoch": "e1",
        "recovered": True,
    }
    assert decode_frame(protocol.subscribed_frame("c")) == {"type": "subscribed", "channel": "c"}
    assert {
        protocol.HISTORY_DISABLED,
        protocol.HISTORY_UNRECOVERABLE,
        protocol.HISTORY_UNAVAILABLE,
    } <= protocol.ERROR_CODES
