"""Property: hostile JSON values through every door of a real server leave nothing behind.

Random JSON *texts* (so that they can hold what Python would never write:
lone surrogates, ``1e400``, 5,000-digit integers, 1,000 levels of nesting) go
through every place that takes data or claims: a client's ``data``, the other
fields of ``subscribe``/``unsubscribe``/``members``, ``auth`` tokens and
``?token=`` claims, presence member fields (``name``, ``info``), and
``fazt.realtime.broadcast``/``broadcastAll`` from an ``api/*.js`` handler.
Afterwards ``fazt.realtime.count()`` is 0, the presence channel is empty, and
the server has logged no traceback. ``fazt serve`` runs as a subprocess; the
clients are real sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.harness import FaztProcess, make_app
from tests.realtime.wsclient import hs256_token, strict_loads

SECRET = "hostile-property-secret-0123456789abcdef"
PRESENCE = "presence-lobby"

HANDLER = """
module.exports = async (req) => {
  const rt = fazt.realtime;
  const b = req.json || {};
  try {
    switch (b.op) {
      case 'count': return {json: {count: await rt.count()}};
      case 'broadcast': await rt.broadcast('talk', b.data); return {json: {sent: true}};
      case 'broadcastAll': await rt.broadcastAll(b.data); return {json: {sent: true}};
    }
  } catch (e) { return {json: {refused: e.message}}; }
  return {status: 400, json: {error: 'unknown op'}};
};
"""

# -- JSON texts, hostile ones included -----------------------------------------------------
_CHARS = st.characters() | st.characters(categories=["Cs"])
STRINGS = st.text(_CHARS, max_size=12).map(lambda text: json.dumps(text))  # ASCII escapes
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["1e400", "-1e400", "1E999", "2e308", "1e308", "-0.0", "4" * 400]),
    st.integers(min_value=4000, max_value=5000).map(lambda digits: "7" * digits),
)
LEAVES = st.one_of(st.sampled_from(["null", "true", "false"]), NUMBERS, STRINGS)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


SHALLOW = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4).map(_array)
        | st.lists(st.tuples(STRINGS, inner), max_size=4).map(_object)
    ),
    max_leaves=12,
)


def nested(depths: list[int]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(depths), LEAVES).map(
        lambda pair: "[" * pair[0] + pair[1] + "]" * pair[0]
    )


VALUES = st.one_of(SHALLOW, SHALLOW, SHALLOW, nested([63, 64, 65, 100, 1000]))

CLIENT_DOORS = [
    "publish",
    "publish-binary",
    "subscribe-extra",
    "unsubscribe-extra",
    "channel",
    "members-extra",
    "auth-name",
    "auth-info",
    "auth-claim",
    "upgrade-info",
    "upgrade-name",
]
#: One hostile step: (door, JSON text of the value).
STEPS = st.lists(
    st.tuples(st.sampled_from(CLIENT_DOORS), VALUES)
    | st.tuples(st.sampled_from(["broadcast", "broadcastAll"]), VALUES),
    min_size=1,
    max_size=6,
)


# -- the server and its clients ------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztProcess]:
    root: Path = tmp_path_factory.mktemp("hostile")
    manifest = {"realtime": {"channels": {"talk": {"publish": True}}}}
    make_app(root / "apps", "chat", manifest, {"api/rt.js": HANDLER})
    config = {"realtime": {"shutdownGraceSeconds": 0.5}}
    process = FaztProcess(
        root / "apps", data_dir=root / "data", config=config, extra_args=["--jwt-secret", SECRET]
    )
    with process:
        yield process
    log = process.log_text()
    assert "Traceback" not in log, log[-3000:]


def token(claims_text: str) -> str:
    """An HS256 token over exactly ``claims_text`` (hand-written JSON)."""
    return hs256_token(SECRET.encode(), claims_text)


def claims_with(sub: str, extra: str = "") -> str:
    return f'{{"sub":"{sub}","exp":{int(time.time()) + 600}{extra}}}'


def is_strict(text: str, enclosing: int) -> bool:
    """The reference answer: may a value written as ``text``, inside ``enclosing``
    arrays or objects, enter? (Finite numbers, no lone surrogates, at most 64 levels.)"""
    try:
        value = json.loads(text, parse_constant=float)
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError):
        return False
    levels, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            levels = max(levels, depth)
            children = item.values() if isinstance(item, dict) else item
            level.extend((child, depth + 1) for child in children)
    return levels + enclosing <= 64


def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    value: dict[str, Any] = strict_loads(ws.recv(timeout=timeout))
    return value


def request(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    """Send a frame, then a ping; the last reply to the frame before the pong
    (``{"type": "none"}`` without one). Channel traffic is skipped."""
    ws.send(frame)
    ws.send('{"type":"ping"}')
    last: dict[str, Any] = {"type": "none"}
    while True:
        reply = recv(ws)
        if reply == {"type": "pong"}:
            return last
        if reply["type"] not in ("message", "presence"):
            last = reply


def rst(ws: ClientConnection) -> None:
    """Drop the connection abruptly: RST, no close frame."""
    sock = ws.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Wake the client's reader thread first: closing a socket does not wake a thread
    # blocked reading it, and the client's close would wait for that thread forever.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    sock.close()


def open_ws(stack: contextlib.ExitStack, url: str) -> ClientConnection | None:
    """A connected client, or None when the upgrade was refused (401)."""
    try:
        ws = stack.enter_context(connect(url, open_timeout=5, close_timeout=1, max_size=None))
    except InvalidStatus as refused:
        assert refused.response.status_code == 401
        return None
    assert recv(ws)["type"] == "connected"
    return ws


def call(server: FaztProcess, body: str) -> dict[str, Any]:
    http = urllib.request.Request(
        server.url("chat", "/api/rt"),
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=10) as response:
            value: dict[str, Any] = strict_loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.code == 400, (error.code, error.read())  # a body JSON cannot carry
        error.close()
        return {"status": 400}
    return value


def wait_for_count(server: FaztProcess, expected: int, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while True:
        count = call(server, '{"op":"count"}')["count"]
        if count == expected or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert count == expected


def run_step(
    server: FaztProcess,
    stack: contextlib.ExitStack,
    sender: ClientConnection,
    step: tuple[str, str],
) -> None:
    door, value = step
    url = server.ws_url("chat")
    strict = is_strict(value, 1)

    def refused(reply: dict[str, Any]) -> bool:
        return reply["type"] == "error" and reply["code"] == "invalid_json"

    if door == "publish":
        reply = request(sender, f'{{"type":"message","channel":"talk","data":{value}}}')
        assert reply == {"type": "none"} if strict else refused(reply), reply
    elif door == "publish-binary":
        frame = f'{{"type":"message","channel":"talk","data":{value}}}'.encode()
        raw = frame.replace(b"\\ud800", b"\xed\xa0\x80")  # an escape made raw bytes
        reply = request(sender, raw)
        if strict and raw == frame:
            assert reply == {"type": "none"}, reply
        else:
            assert refused(reply), reply
    elif door == "subscribe-extra":
        reply = request(sender, f'{{"type":"subscribe","channel":"talk","x":{value}}}')
        assert reply["type"] == "subscribed" if strict else refused(reply)
    elif door == "unsubscribe-extra":
        assert request(sender, '{"type":"subscribe","channel":"tmp"}')["type"] == "subscribed"
        reply = request(sender, f'{{"type":"unsubscribe","channel":"tmp","x":{value}}}')
        if strict:
            assert reply == {"type": "unsubscribed", "channel": "tmp"}, reply
        else:
            assert refused(reply), reply
            assert (
                request(sender, '{"type":"unsubscribe","channel":"tmp"}')["type"] == "unsubscribed"
            )
    elif door == "channel":
        reply = request(sender, f'{{"type":"subscribe","channel":{value}}}')
        assert reply["type"] in ("subscribed", "error"), reply
    elif door == "members-extra":
        reply = request(sender, f'{{"type":"members","channel":"{PRESENCE}","x":{value}}}')
        if strict:
            assert reply["type"] == "members" or reply["code"] == "not_subscribed", reply
        else:
            assert refused(reply), reply
    elif door in ("auth-name", "auth-info", "auth-claim"):
        field = {"auth-name": "name", "auth-info": "info", "auth-claim": "note"}[door]
        claims = claims_with("hostile", f',"{field}":{value}')
        reply = request(sender, json.dumps({"type": "auth", "token": token(claims)}))
        if reply["type"] == "authenticated":
            assert strict, value
            joined = request(sender, f'{{"type":"subscribe","channel":"{PRESENCE}"}}')
            assert joined["type"] == "subscribed", joined
        else:
            assert reply["code"] == "unauthorized", reply
            assert not strict or door != "auth-claim", reply  # any strict extra claim is fine
    elif door in ("upgrade-info", "upgrade-name"):
        extra = f',"info":{{"v":{value}}}' if door == "upgrade-info" else f',"name":{value}'
        claims = claims_with("guest", extra)
        ws = open_ws(stack, f"{url}?token={token(claims)}")
        if not is_strict(value, 2 if door == "upgrade-info" else 1):
            assert ws is None, "a token whose claims are not strict JSON was accepted"
        if ws is not None:
            joined = request(ws, f'{{"type":"subscribe","channel":"{PRESENCE}"}}')
            assert joined["type"] == "subscribed", joined
            rst(ws)
    else:  # broadcast, broadcastAll
        answer = call(server, f'{{"op":"{door}","data":{value}}}')
        assert answer.get("sent") or answer.get("refused") or answer.get("status") == 400, answer
        if "refused" in answer:
            assert answer["refused"].startswith(f"fazt.realtime.{door}:"), answer


# Hypothesis takes a timeout's exception for a failing example and goes on
# shrinking, so pytest-timeout's default (an exception in the test) could never end
# a hang here; the thread method dumps every stack and ends the run instead.
@pytest.mark.timeout(240, method="thread")
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_hostile_values_through_every_door_leave_nothing_behind(
    server: FaztProcess, steps: list[tuple[str, str]]
) -> None:
    url = server.ws_url("chat")
    with contextlib.ExitStack() as stack:
        watcher = open_ws(stack, url)
        sender = open_ws(stack, f"{url}?token={token(claims_with('sender'))}")
        assert watcher is not None and sender is not None
        for ws in (watcher, sender):
            assert request(ws, '{"type":"subscribe","channel":"talk"}')["type"] == "subscribed"
        assert request(sender, f'{{"type":"subscribe","channel":"{PRESENCE}"}}')["members"]
        for step in steps:
            run_step(server, stack, sender, step)
        # The watcher is still served, and everything it got was strict JSON.
        assert request(watcher, '{"type":"ping","after":"steps"}') == {"type": "none"}
        with contextlib.suppress(ConnectionClosed):
            rst(sender)
    # Everyone left: nothing leaked, nobody is still present.
    wait_for_count(server, 0)
    with contextlib.ExitStack() as stack:
        probe = open_ws(stack, f"{url}?token={token(claims_with('probe'))}")
        assert probe is not None
        joined = request(probe, f'{{"type":"subscribe","channel":"{PRESENCE}"}}')
        assert joined["members"] == [{"id": "probe"}], joined
    wait_for_count(server, 0)
