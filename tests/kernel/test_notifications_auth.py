"""Owner notifications and the kernel's ``fazt.auth`` namespace."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext, HostCallError
from fazt.kernel.auth_api import auth_namespace
from fazt.kernel.notifications import Notification, Notifications
from fazt.kernel.tokens import TokenError, TokenService


def test_notifications_fan_out_and_log(caplog: pytest.LogCaptureFixture) -> None:
    notifications = Notifications()
    got: list[Notification] = []
    seen_by_second: list[str] = []

    def broken(_: Notification) -> None:
        raise RuntimeError("subscriber bug")

    unsubscribe = notifications.subscribe(got.append)
    notifications.subscribe(broken)
    notifications.subscribe(lambda n: seen_by_second.append(n.kind))
    event = Notification("realtime.limit.warning", "80% of connections", "app_x1y2z3", {"n": 8})
    with caplog.at_level(logging.WARNING, logger="fazt.notifications"):
        notifications.notify(event)
    assert got == [event] and seen_by_second == ["realtime.limit.warning"]
    messages = [r.getMessage() for r in caplog.records]
    assert "notification realtime.limit.warning app=app_x1y2z3: 80% of connections" in messages
    assert any("subscriber" in m and "failed" in m for m in messages)
    unsubscribe()
    unsubscribe()
    notifications.notify(Notification("k", "m"))
    assert got == [event]


TOKENS = TokenService(b"s" * 32)
issue_token = auth_namespace(TOKENS)["issueToken"]


@pytest.mark.gen_test(timeout=10)
async def test_issue_token_is_bound_to_the_calling_app(tmp_path: Path) -> None:
    chat = App(slug="chat", uuid="app_chat0001", root=tmp_path)
    poll = App(slug="poll", uuid="app_poll0001", root=tmp_path)
    context = HostCallContext(app=chat)
    token = await issue_token(
        context, [{"sub": "alice", "name": "Alice", "role": ["admin"], "ttlSeconds": 120}]
    )
    claims = TOKENS.verify(token, chat)
    assert claims["app"] == "app_chat0001" and claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 120 and claims["role"] == ["admin"]
    with pytest.raises(TokenError, match="token is for another app"):
        TOKENS.verify(token, poll)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "expects one options object"),
        (["alice"], "expects one options object"),
        ([{}], "sub must be a non-empty string"),
        ([{"sub": 5}], "sub must be a non-empty string"),
        ([{"sub": "a", "name": 1}], "name must be a string"),
        ([{"sub": "a", "role": [1]}], "role must be a string or an array"),
        ([{"sub": "a", "info": "x"}], "info must be an object"),
        ([{"sub": "a", "ttlSeconds": 0}], "ttlSeconds must be an integer"),
        ([{"sub": "a", "ttlSeconds": True}], "ttlSeconds must be an integer"),
        ([{"sub": "a", "app": "other"}], "unknown option 'app'"),
    ],
)
@pytest.mark.gen_test(timeout=10)
async def test_issue_token_argument_errors(
    tmp_path: Path, args: list[object], message: str
) -> None:
    context = HostCallContext(app=App("chat", "app_chat0001", tmp_path))
    with pytest.raises(HostCallError) as raised:
        await issue_token(context, list(args))
    assert str(raised.value).startswith("fazt.auth.issueToken: ")
    assert message in str(raised.value)
