"""The fazt realtime wire protocol, sans-I/O: client frames in, server bytes out.

Everything a client can send is parsed here into a typed message or a
``ProtocolError``. Every frame the server sends is built here, by one function
per message shape (``connected_frame``, ``subscribed_frame``, ...); nothing
outside this module writes a server message as a dict. The error codes and
close codes live here and nowhere else. No Tornado, no asyncio: this module is
tested with plain strings and bytes. ``docs/protocol.md`` is its user-facing
description and must be kept in step with it.

Two forms come out: a *payload* is the UTF-8 JSON text of a message (what the
backplane carries between nodes), a *frame* is that payload inside one
WebSocket text frame (what a transport writes). Messages that go to a channel
(``message``, ``presence``) are built as payloads, so one encoding serves the
local fan-out and the other nodes; the rest are built as frames.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fazt.contracts.strict_json import StrictJsonError, check_strict_json, loads_without_constants
from fazt.realtime import compact_json
from fazt.realtime.backplane.history import StreamPosition
from fazt.realtime.channels import (
    CHANNEL_CHARACTERS_TEXT,
    MAX_CHANNEL_LENGTH,
    is_valid_channel_name,
)

# -- error codes (sent in {"type": "error", "code": ...}; never close the connection)
INVALID_JSON: Final = "invalid_json"
INVALID_MESSAGE: Final = "invalid_message"
UNKNOWN_TYPE: Final = "unknown_type"
INVALID_CHANNEL: Final = "invalid_channel"
UNAUTHORIZED: Final = "unauthorized"
FORBIDDEN: Final = "forbidden"
NOT_SUBSCRIBED: Final = "not_subscribed"
SUBSCRIPTION_LIMIT: Final = "subscription_limit"
CHANNEL_LIMIT: Final = "channel_limit"
RATE_LIMITED: Final = "rate_limited"
HISTORY_DISABLED: Final = "history_disabled"
HISTORY_UNRECOVERABLE: Final = "history_unrecoverable"
HISTORY_UNAVAILABLE: Final = "history_unavailable"
#: The app's ``onPublish`` hook refused a client message (or failed: it fails closed).
REJECTED: Final = "rejected"

ERROR_CODES: Final = frozenset(
    {
        INVALID_JSON,
        INVALID_MESSAGE,
        UNKNOWN_TYPE,
        INVALID_CHANNEL,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_SUBSCRIBED,
        SUBSCRIPTION_LIMIT,
        CHANNEL_LIMIT,
        RATE_LIMITED,
        HISTORY_DISABLED,
        HISTORY_UNRECOVERABLE,
        HISTORY_UNAVAILABLE,
        REJECTED,
    }
)

# -- close codes (Pusher's reconnect classes: 40xx do not reconnect, 41xx back off,
# 42xx reconnect now).
#: Reported, never sent (RFC 6455): a close frame without a code (1005), and no close
#: frame at all, the TCP connection dropped (1006).
NO_STATUS: Final = 1005
ABNORMAL_CLOSURE: Final = 1006
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_UNKNOWN_APP: Final = 4001
CLOSE_KICKED: Final = 4003
CLOSE_AUTH_FAILED: Final = 4009
CLOSE_OVER_CAPACITY: Final = 4100
CLOSE_SLOW_CONSUMER: Final = 4101
CLOSE_SERVER_RESTART: Final = 4200
CLOSE_PONG_TIMEOUT: Final = 4201
CLOSE_IDLE_TIMEOUT: Final = 4202

CLOSE_REASONS: Final = {
    CLOSE_MESSAGE_TOO_BIG: "message too big",
    CLOSE_INTERNAL_ERROR: "internal error",
    CLOSE_UNKNOWN_APP: "unknown app",
    CLOSE_KICKED: "kicked",
    CLOSE_AUTH_FAILED: "authentication failed",
    CLOSE_OVER_CAPACITY: "over capacity",
    CLOSE_SLOW_CONSUMER: "slow consumer",
    CLOSE_SERVER_RESTART: "server restart",
    CLOSE_PONG_TIMEOUT: "pong not received",
    CLOSE_IDLE_TIMEOUT: "idle timeout",
}

#: Longest token accepted in an ``auth`` message (the token service has the same bound).
MAX_TOKEN_LENGTH: Final = 8192
#: Longest ``reason`` of a ``kicked`` message; a longer one is cut.
MAX_KICK_REASON: Final = 200
#: Longest ``error`` text that quotes the client's own frame (a path through its keys).
MAX_ERROR_TEXT: Final = 200
#: Longest ``epoch`` accepted in a ``since`` position (the server's are 12 characters).
MAX_EPOCH_LENGTH: Final = 64
#: Largest ``offset`` accepted in a ``since`` position (JSON's safe integers).
MAX_OFFSET: Final = 2**53 - 1


class ProtocolError(Exception):
    """A client frame was refused; answer with ``error_frame(...)`` and keep the connection."""

    def __init__(self, code: str, text: str, channel: str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.channel = channel


# -- client messages -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    #: A recovering subscribe: the position of the last publication the client got.
    since: StreamPosition | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True, slots=True)
class Publish:
    """A client ``message``: allowed only by a ``publish: true`` rule, from a subscriber."""

    channel: str
    data: Any


@dataclass(frozen=True, slots=True)
class Members:
    channel: str


@dataclass(frozen=True, slots=True)
class History:
    """``history``: the newest ``limit`` publications (None: the rule's size), or those
    after ``since``."""

    channel: str
    limit: int | None = None
    since: StreamPosition | None = None


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


ClientMessage = Subscribe | Unsubscribe | Publish | Members | History | Auth | Ping | Pong

_PING: Final = Ping()
_PONG: Final = Pong()
_CHANNEL_TYPES: Final[dict[str, type[Unsubscribe | Members]]] = {
    "unsubscribe": Unsubscribe,
    "members": Members,
}


def parse(frame: str | bytes) -> ClientMessage:
    """Parse one client text frame, or raise ``ProtocolError``.

    A frame that is not *strict* JSON is ``invalid_json`` too: a number too big
    for a double (``1e400`` would parse to infinity), a lone surrogate in a
    string or key (``"\\ud800"``), or nesting deeper than 64 levels
    (``fazt.contracts.strict_json``). That is checked here, once, so nothing
    behind the edge meets a value it cannot encode again; the error names the
    place, cut to ``MAX_ERROR_TEXT`` characters (a key is client text).
    Unknown extra fields are ignored (forward compatibility); a known field of
    the wrong type is ``invalid_message``; a bad channel name is
    ``invalid_channel`` (with the offending name echoed only when it is short
    and printable, so a hostile name is never reflected in full).
    """
    try:
        value = loads_without_constants(frame)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(INVALID_JSON, "frame is not valid JSON") from error
    try:
        check_strict_json(value, path="message")
    except StrictJsonError as error:
        text = f"frame is not strict JSON: {error}"
        raise ProtocolError(INVALID_JSON, text[:MAX_ERROR_TEXT]) from error
    if not isinstance(value, dict):
        raise ProtocolError(INVALID_MESSAGE, "a message must be a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(INVALID_MESSAGE, "field 'type' must be a string")
    if kind == "ping":
        return _PING
    if kind == "pong":
        return _PONG
    if kind == "auth":
        token = value.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(INVALID_MESSAGE, "field 'token' must be a non-empty string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise ProtocolError(UNAUTHORIZED, "token too long")
        return Auth(token)
    if kind == "message":
        channel = _channel_of(value)
        if "data" not in value:
            raise ProtocolError(INVALID_MESSAGE, "field 'data' is required", channel)
        return Publish(channel, value["data"])
    if kind == "subscribe":
        channel = _channel_of(value)
        return Subscribe(channel, _since_of(value, channel))
    if kind == "history":
        channel = _channel_of(value)
        since = _since_of(value, channel)
        limit = value.get("limit")
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise ProtocolError(
                INVALID_MESSAGE, "field 'limit' must be a positive integer", channel
            )
        if limit is not None and since is not None:
            raise ProtocolError(
                INVALID_MESSAGE, "give either 'limit' or 'since', not both", channel
            )
        return History(channel, limit, since)
    message_class = _CHANNEL_TYPES.get(kind)
    if message_class is None:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {_printable(kind)!r}")
    return message_class(_channel_of(value))


def _channel_of(value: dict[str, Any]) -> str:
    channel = value.get("channel")
    if not isinstance(channel, str):
        raise ProtocolError(INVALID_MESSAGE, "field 'channel' must be a string")
    if not is_valid_channel_name(channel):
        raise ProtocolError(
            INVALID_CHANNEL,
            f"channel names are 1-{MAX_CHANNEL_LENGTH} characters from {CHANNEL_CHARACTERS_TEXT}",
            _printable(channel) or None,
        )
    return channel


def _since_of(value: dict[str, Any], channel: str) -> StreamPosition | None:
    """The optional ``since`` position: ``{"offset": int >= 0, "epoch": string}``."""
    since = value.get("since")
    if since is None:
        return None
    if not isinstance(since, dict):
        raise ProtocolError(
            INVALID_MESSAGE, "field 'since' must be an object {offset, epoch}", channel
        )
    offset, epoch = since.get("offset"), since.get("epoch")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise ProtocolError(
            INVALID_MESSAGE, "field 'since.offset' must be a non-negative integer", channel
        )
    if not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_EPOCH_LENGTH:
        raise ProtocolError(
            INVALID_MESSAGE,
            f"field 'since.epoch' must be a string of 1-{MAX_EPOCH_LENGTH} characters",
            channel,
        )
    return StreamPosition(offset, epoch)


def _printable(text: str) -> str:
    """A short, safe echo of client-supplied text for error messages."""
    return text[:64] if text.isprintable() else ""


# -- server messages: payloads ----------------------------------------------------
_dumps = compact_json.dumps


def encode(message: dict[str, Any]) -> bytes:
    """The UTF-8 JSON text of a server message (compact, no NaN/Infinity).

    Raises ``ValueError``/``TypeError`` when ``message`` holds something JSON
    cannot carry; the server API turns that into a clear error for user data.
    """
    return _dumps(message).encode("utf-8")


def _json_text(text: str) -> bytes:
    """A JSON string literal, UTF-8."""
    return _dumps(text).encode("utf-8")


def message_payload(channel: str, data: Any, timestamp_ms: int, sender: str | None = None) -> bytes:
    """``{"type":"message","channel","data","timestamp"[,"from"]}``: one channel message."""
    message: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "data": data,
        "timestamp": timestamp_ms,
    }
    if sender is not None:
        message["from"] = sender
    return encode(message)


# A history channel's message is numbered by the history store, after it was built:
# the store completes a *publication head* with the offset and puts the
# *message prefix* in front (see ``backplane.history``).
_OFFSET_FIELD: Final = b',"offset":'


def publication_head(data: Any, timestamp_ms: int, sender: str | None = None) -> bytes:
    """``{"data","timestamp"[,"from"],"offset":`` : a publication before its offset.

    Raises ``ValueError``/``TypeError`` as ``encode`` does.
    """
    body: dict[str, Any] = {"data": data, "timestamp": timestamp_ms}
    if sender is not None:
        body["from"] = sender
    return encode(body)[:-1] + _OFFSET_FIELD


def message_prefix(channel: str) -> bytes:
    """``{"type":"message","channel":C,`` : a publication's ``{`` becomes this in its message."""
    return b'{"type":"message","channel":' + _json_text(channel) + b","


def unnumbered_message(prefix: bytes, head: bytes) -> bytes:
    """The message of a publication on a channel without history: no ``offset``.

    The same bytes as ``message_payload`` gives for the same message.
    """
    return prefix + head[1 : -len(_OFFSET_FIELD)] + b"}"


def numbered_message(prefix: bytes, publication: bytes) -> bytes:
    """The message of a stored publication (``{"data",...,"offset":N}``)."""
    return prefix + publication[1:]


def app_message_payload(data: Any, timestamp_ms: int) -> bytes:
    """``broadcastAll``: ``{"type":"message","data","timestamp"}`` with no channel."""
    return encode({"type": "message", "data": data, "timestamp": timestamp_ms})


def presence_payload(channel: str, event: str, member: Mapping[str, Any]) -> bytes:
    """``{"type":"presence","channel","event":"join"|"leave","client":member}``."""
    return encode({"type": "presence", "channel": channel, "event": event, "client": dict(member)})


def error_payload(code: str, text: str, channel: str | None = None) -> bytes:
    """``{"type":"error","code","error"[,"channel"]}``: a refused request."""
    message: dict[str, Any] = {"type": "error", "code": code, "error": text}
    if channel is not None:
        message["channel"] = channel
    return encode(message)


PING_PAYLOAD: Final = encode({"type": "ping"})
PONG_PAYLOAD: Final = encode({"type": "pong"})
SERVER_RESTART_PAYLOAD: Final = encode({"type": "server_restart"})


# -- WebSocket framing (RFC 6455 section 5.2) --------------------------------------
_FIN_TEXT: Final = 0x81
_pack_16: Final = struct.Struct(">BBH").pack
_pack_64: Final = struct.Struct(">BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """One complete unmasked, uncompressed, final text frame carrying ``payload``.

    Servers never mask (RFC 6455 5.1), so the same bytes can be written to every
    subscriber of a broadcast.
    """
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 65536:
        return _pack_16(_FIN_TEXT, 126, length) + payload
    return _pack_64(_FIN_TEXT, 127, length) + payload


# -- server messages: frames (one connection each) -------------------------------
PING_FRAME: Final = text_frame(PING_PAYLOAD)
PONG_FRAME: Final = text_frame(PONG_PAYLOAD)
SERVER_RESTART_FRAME: Final = text_frame(SERVER_RESTART_PAYLOAD)


def _frame(message: dict[str, Any]) -> bytes:
    return text_frame(encode(message))


def connected_frame(client_id: str, user: Mapping[str, Any] | None) -> bytes:
    """``{"type":"connected","clientId"[,"user"]}``: the first frame of a connection."""
    message: dict[str, Any] = {"type": "connected", "clientId": client_id}
    if user is not None:
        message["user"] = dict(user)
    return _frame(message)


def authenticated_frame(user: Mapping[str, Any]) -> bytes:
    """``{"type":"authenticated","user"}``: the answer to a valid ``auth``."""
    return _frame({"type": "authenticated", "user": dict(user)})


def subscribed_frame(
    channel: str,
    members: list[dict[str, Any]] | None = None,
    *,
    position: StreamPosition | None = None,
    recovered: bool | None = None,
) -> bytes:
    """``{"type":"subscribed","channel"[,"members"][,"offset","epoch"][,"recovered"]}``.

    ``members`` on presence channels; ``offset`` and ``epoch`` on history
    channels; ``recovered`` when the subscribe asked to recover (``since``), or
    when the server tells a subscriber that its stream lost publications.
    """
    message: dict[str, Any] = {"type": "subscribed", "channel": channel}
    if members is not None:
        message["members"] = members
    if position is not None:
        message["offset"] = position.offset
        message["epoch"] = position.epoch
    if recovered is not None:
        message["recovered"] = recovered
    return _frame(message)


def history_frame(channel: str, publications: tuple[bytes, ...], position: StreamPosition) -> bytes:
    """``{"type":"history","channel","publications":[...],"offset","epoch"}``, oldest first.

    The stored publications are JSON texts already: they are joined, not re-encoded.
    """
    return text_frame(
        b'{"type":"history","channel":'
        + _json_text(channel)
        + b',"publications":['
        + b",".join(publications)
        + b'],"offset":%d,"epoch":' % position.offset
        + _json_text(position.epoch)
        + b"}"
    )


def unsubscribed_frame(channel: str, reason: str | None = None) -> bytes:
    """``{"type":"unsubscribed","channel"[,"reason"]}``; a reason when the server dropped it."""
    message: dict[str, Any] = {"type": "unsubscribed", "channel": channel}
    if reason is not None:
        message["reason"] = reason
    return _frame(message)


def members_frame(channel: str, members: list[dict[str, Any]]) -> bytes:
    """``{"type":"members","channel","members"}``: the answer to ``members``."""
    return _frame({"type": "members", "channel": channel, "members": members})


def kicked_frame(reason: str) -> bytes:
    """``{"type":"kicked","reason"}``: sent just before close 4003."""
    return _frame({"type": "kicked", "reason": reason})


def error_frame(code: str, text: str, channel: str | None = None) -> bytes:
    """An ``error`` frame (see ``error_payload``)."""
    return text_frame(error_payload(code, text, channel))


def error_frame_from(error: ProtocolError) -> bytes:
    """The ``error`` frame that answers a refused client frame."""
    return error_frame(error.code, error.text, error.channel)


#: Standard close codes a connection may end with besides fazt's own (RFC 6455).
_STANDARD_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, NO_STATUS, ABNORMAL_CLOSURE, 1007, 1009, 1011}
)


def known_close_code(code: int) -> str:
    """``code`` as text when fazt or RFC 6455 names it, else ``"other"``: clients may
    close with any code from 1000 to 4999, and the metrics keep a bounded set."""
    return str(code) if code in CLOSE_REASONS or code in _STANDARD_CLOSE_CODES else "other"


def close_reason(code: int) -> str:
    """The close reason sent with ``code`` (empty for a code this server never sends)."""
    return CLOSE_REASONS.get(code, "")
