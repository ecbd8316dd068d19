"""Property: after any sequence of random frames the server still answers everyone correctly."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from tests.harness import FaztProcess, make_app

TYPES = ["subscribe", "unsubscribe", "message", "members", "auth", "ping", "pong", "nope", ""]
CHANNELS = st.one_of(
    st.sampled_from(["talk", "private-x", "presence-y", "app_other:talk", ":", "a" * 200]),
    st.text(max_size=250),
    st.integers(),
    st.none(),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.sampled_from(TYPES), JSON),
        "channel": CHANNELS,
        "data": JSON,
        "token": st.one_of(st.text(max_size=50), JSON),
    },
).map(json.dumps)
SAFE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
FRAMES = st.lists(
    st.one_of(MESSAGES, SAFE_TEXT, JSON.map(json.dumps), st.binary(max_size=200)),
    max_size=25,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztProcess]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    make_app(root / "apps", "chat", {"realtime": {"channels": {"talk": {"publish": True}}}})
    make_app(root / "apps", "other")
    config = {"realtime": {"limits": {"maxConnectionsPerApp": 50}}}
    with FaztProcess(root / "apps", data_dir=root / "data", config=config) as proc:
        yield proc


def _recv(ws: ClientConnection) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(ws.recv(timeout=5))
    return value


def _open(stack: contextlib.ExitStack, url: str) -> ClientConnection:
    ws = stack.enter_context(connect(url, open_timeout=5, close_timeout=2, max_size=None))
    assert _recv(ws)["type"] == "connected"
    return ws


# Hypothesis takes a timeout's exception for a failing example and goes on
# shrinking, so pytest-timeout's default (an exception in the test) could never end
# a hang here; the thread method dumps every stack and ends the run instead.
@pytest.mark.timeout(240, method="thread")
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=FRAMES)
def test_random_frames_never_break_the_server(server: FaztProcess, frames: list[Any]) -> None:
    url = server.ws_url("chat")
    with contextlib.ExitStack() as stack:
        fuzz, watcher = _open(stack, url), _open(stack, url)
        other = _open(stack, server.ws_url("other"))
        watcher.send('{"type":"subscribe","channel":"talk"}')
        assert _recv(watcher) == {"type": "subscribed", "channel": "talk"}
        other.send('{"type":"subscribe","channel":"talk"}')
        assert _recv(other) == {"type": "subscribed", "channel": "talk"}
        for frame in frames:
            fuzz.send(frame)
        # The fuzzing client still gets an answer to a well-formed request ...
        fuzz.send('{"type":"subscribe","channel":"marker"}')
        while True:
            reply = _recv(fuzz)
            assert reply["type"] in {
                "error",
                "subscribed",
                "unsubscribed",
                "pong",
                "members",
                "authenticated",
                "presence",
                "message",
            }, reply
            if reply.get("error") is not None:
                assert reply["code"] in {
                    "invalid_json",
                    "invalid_message",
                    "unknown_type",
                    "invalid_channel",
                    "unauthorized",
                    "forbidden",
                    "not_subscribed",
                    "subscription_limit",
                    "channel_limit",
                    "rate_limited",
                }
            if reply.get("channel") == "marker":
                break
        # ... anything it published reached the watcher only as a proper message ...
        fuzz.send('{"type":"subscribe","channel":"talk"}')
        fuzz.send('{"type":"message","channel":"talk","data":"check"}')
        while True:
            message = _recv(watcher)
            assert message["type"] == "message" and message["channel"] == "talk"
            if message["data"] == "check":
                break
        # ... and another app never saw any of it.
        other.send('{"type":"ping"}')
        assert _recv(other) == {"type": "pong"}
