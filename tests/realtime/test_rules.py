"""Channel names and rules, session clocks and limits: pure, no sockets, no sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from fazt.realtime.channels import (
    ChannelRule,
    ChannelRules,
    check_access,
    is_valid_channel_name,
)
from fazt.realtime.limits import Limits, ThresholdWatcher, limits_schema
from fazt.realtime.presence import member_from_claims, user_from_claims
from fazt.realtime.session import Due, HeartbeatPolicy, Session
from tests.realtime.fakes import FakeTransport


def test_channel_names() -> None:
    assert is_valid_channel_name("a")
    assert is_valid_channel_name("x" * 200)
    assert not is_valid_channel_name("x" * 201)
    assert not is_valid_channel_name("")
    assert not is_valid_channel_name(None)
    assert not is_valid_channel_name("a/b")
    assert is_valid_channel_name("app_2:chat")  # a ':' is just a character of a name


def test_default_rules() -> None:
    rules = ChannelRules()
    assert rules.rule_for("chat") == ChannelRule()
    assert rules.rule_for("private-x").needs_auth
    assert rules.rule_for("presence-x").needs_auth
    assert not rules.rule_for("chat").publish


def test_exact_beats_glob_and_longer_glob_wins() -> None:
    rules = ChannelRules(
        {
            "*": {"publish": True},
            "room-*": {"auth": True},
            "room-admin-*": {"role": "admin"},
            "room-lobby": {"auth": False, "publish": True},
            "private-open": {"auth": False},
            "private-*": {"publish": True},
        }
    )
    assert rules.rule_for("anything").publish
    assert rules.rule_for("room-1") == ChannelRule(auth=True)
    assert rules.rule_for("room-admin-1").roles == frozenset({"admin"})
    assert rules.rule_for("room-lobby") == ChannelRule(auth=False, publish=True)
    assert not rules.rule_for("private-open").needs_auth
    # A rule that does not mention auth keeps private-'s default.
    assert rules.rule_for("private-x") == ChannelRule(auth=True, publish=True)


def test_glob_special_characters_are_literal() -> None:
    rules = ChannelRules({"a.b-*": {"publish": True}})
    assert rules.rule_for("a.b-1").publish
    assert not rules.rule_for("axb-1").publish


def test_from_manifest_ignores_garbage() -> None:
    assert ChannelRules.from_manifest({"channels": "nope"}).rule_for("x") == ChannelRule()
    assert ChannelRules({"x": "bad"}).rule_for("x") == ChannelRule()  # type: ignore[dict-item]


def test_check_access() -> None:
    admin = ChannelRule(auth=True, roles=frozenset({"admin"}))
    assert check_access(ChannelRule(), None) is None
    assert check_access(ChannelRule(auth=True), None) == "unauthorized"
    assert check_access(ChannelRule(auth=True), {"sub": "a"}) is None
    assert check_access(admin, None) == "unauthorized"
    assert check_access(admin, {"sub": "a", "role": "user"}) == "forbidden"
    assert check_access(admin, {"sub": "a", "role": ["user", "admin"]}) is None


def test_members_and_users() -> None:
    claims: dict[str, Any] = {
        "sub": "u1",
        "name": "Alice",
        "role": "admin",
        "info": {"id": "evil", "name": "Mallory", "color": "red"},
    }
    assert member_from_claims(claims) == {"id": "u1", "name": "Alice", "color": "red"}
    assert member_from_claims({"sub": "u2", "info": {"name": "x"}}) == {"id": "u2"}
    assert user_from_claims(claims)["role"] == "admin"
    assert user_from_claims({"sub": "u3", "exp": 1}) == {"id": "u3"}


def make_session(now: float = 0.0, rate: int = 3) -> Session:
    return Session(
        client_id="c",
        app_uuid="app_1",
        transport=FakeTransport(),
        now=now,
        connected_at_ms=1,
        ping_interval=10,
        messages_per_second=rate,
    )


def test_rate_bucket() -> None:
    session = make_session(rate=3)
    assert [session.take_message_token(0.0) for _ in range(4)] == [True, True, True, False]
    assert not session.take_message_token(0.1)
    assert session.take_message_token(0.5)  # refilled 1.5 tokens
    assert session.should_warn_rate(1.0)
    assert not session.should_warn_rate(1.5)
    assert session.should_warn_rate(2.0)


def test_heartbeat_clock() -> None:
    policy = HeartbeatPolicy(ping_interval=10, pong_timeout=3, idle_timeout=100)
    session = make_session()
    assert session.due(9.9, policy) is Due.NOTHING
    assert session.due(10, policy) is Due.PING
    session.ping_sent(10)
    assert session.due(12.9, policy) is Due.NOTHING
    assert session.due(13, policy) is Due.PONG_TIMEOUT
    session.pong(12, policy)
    assert session.due(21.9, policy) is Due.NOTHING
    assert session.due(22, policy) is Due.PING


def test_idle_only_without_subscriptions() -> None:
    policy = HeartbeatPolicy(ping_interval=1000, pong_timeout=3, idle_timeout=5)
    session = make_session()
    assert session.due(4.9, policy) is Due.NOTHING
    assert session.due(5, policy) is Due.IDLE_TIMEOUT
    session.touch(4)
    assert session.due(8.9, policy) is Due.NOTHING
    session.subscriptions["chat"] = None
    assert session.due(500, policy) is not Due.IDLE_TIMEOUT


def test_token_expiry_comes_first() -> None:
    policy = HeartbeatPolicy(ping_interval=1, pong_timeout=1, idle_timeout=1)
    session = make_session()
    session.authenticate({"sub": "a"}, expires_at=3)
    assert session.due(3, policy) is Due.TOKEN_EXPIRED
    session.drop_auth()
    assert session.due(3, policy) is not Due.TOKEN_EXPIRED


def test_limits_lowered_never_raised() -> None:
    kernel = Limits.from_config({"maxConnectionsPerApp": 50, "bogus": 1, "maxChannelsPerApp": 0})
    assert kernel.maxConnectionsPerApp == 50
    assert kernel.maxChannelsPerApp == 100
    app = kernel.lowered_by({"maxConnectionsPerApp": 10_000, "maxSubscriptionsPerClient": 2})
    assert app.maxConnectionsPerApp == 50
    assert app.maxSubscriptionsPerClient == 2
    assert app.lowered_by({"maxMessageSizeKB": True}).maxMessageSizeKB == 64
    assert Limits().max_message_bytes == 65536
    schema = limits_schema()
    assert set(schema["properties"]) == {
        "maxConnectionsTotal",
        "maxConnectionsPerApp",
        "maxChannelsPerApp",
        "maxChannelsCreatedPerClient",
        "maxSubscriptionsPerClient",
        "maxMessageSizeKB",
        "maxMessagesPerSecond",
        "idleTimeoutSeconds",
    }


def test_threshold_fires_once_per_crossing() -> None:
    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    watcher = ThresholdWatcher(lambda name, _msg, app, data: seen.append((name, app, data)))
    for used in (1, 7, 8, 9, 10, 9):
        watcher.observe("maxConnectionsPerApp", used, 10, "app_1")
    assert seen == [("maxConnectionsPerApp", "app_1", {"event": "warning", "used": 8, "limit": 10})]
    watcher.observe("maxConnectionsPerApp", 8, 10, "app_2")  # other app: own crossing
    watcher.observe("maxConnectionsPerApp", 5, 10, "app_1")
    watcher.observe("maxConnectionsPerApp", 8, 10, "app_1")
    assert len(seen) == 3


def test_a_rejection_is_reported_once_until_usage_falls_under_80_percent() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    watcher = ThresholdWatcher(lambda name, _msg, _app, data: seen.append((name, data)))
    for _ in range(3):
        watcher.refused("maxConnectionsPerApp", 10, 10, "app_1")
    assert seen == [("maxConnectionsPerApp", {"event": "rejection", "used": 10, "limit": 10})]
    watcher.observe("maxConnectionsPerApp", 9, 10, "app_1")  # 90 %: its warning, once
    watcher.refused("maxConnectionsPerApp", 10, 10, "app_1")  # not re-armed yet
    assert [data["event"] for _, data in seen] == ["rejection", "warning"]
    watcher.observe("maxConnectionsPerApp", 7, 10, "app_1")  # under 80 %: armed again
    watcher.refused("maxConnectionsPerApp", 10, 10, "app_1")
    assert [data["event"] for _, data in seen] == ["rejection", "warning", "rejection"]


def test_per_client_crossings_are_per_client_and_forgotten_on_close() -> None:
    seen: list[dict[str, Any]] = []
    watcher = ThresholdWatcher(lambda _name, _msg, _app, data: seen.append(data))
    for client in ("c1", "c2"):
        watcher.observe("maxSubscriptionsPerClient", 8, 10, "app_1", client)
        watcher.observe("maxSubscriptionsPerClient", 9, 10, "app_1", client)
    assert [data["clientId"] for data in seen] == ["c1", "c2"]
    watcher.forget_client("c1")
    watcher.observe("maxSubscriptionsPerClient", 8, 10, "app_1", "c1")  # a new crossing
    watcher.observe("maxSubscriptionsPerClient", 9, 10, "app_1", "c2")  # not for c2
    assert [data["clientId"] for data in seen] == ["c1", "c2", "c1"]


@pytest.mark.parametrize("value", [-1, 0, "5", None, 2.5])
def test_limit_values_that_are_ignored_or_truncated(value: object) -> None:
    result = Limits().lowered_by({"maxMessagesPerSecond": value})
    assert result.maxMessagesPerSecond == (2 if value == 2.5 else 100)
