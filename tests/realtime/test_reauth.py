"""Subscriptions never outlive the claims that allowed them: ``auth``, expiry, re-subscribe.

Every ``auth`` (same ``sub`` or not) re-checks every subscription against the
new claims; a repeated subscribe re-checks access; a token expiry drops every
subscription an anonymous client may not hold (``auth``, role and ``{sub}``
rules, private and presence channels).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from fazt.realtime.backplane.registry_memory import MemoryRegistry
from fazt.realtime.session import HeartbeatPolicy
from tests.realtime.world import TOKENS, backplane_with, make_app, make_world
from tests.realtime.wsclient import realtime_kernel

RULES = {
    "realtime": {
        "channels": {
            "admin": {"role": "admin"},
            "ops-*": {"role": ["ops", "admin"], "publish": True},
            "members": {"auth": True},
            "inbox-{sub}": {},
            "open": {},
        }
    }
}
APP = make_app(**RULES)


def token(sub: str, **claims: Any) -> dict[str, str]:
    return {"type": "auth", "token": TOKENS.issue(sub, app="chat", **claims)}


@pytest.mark.gen_test
async def test_auth_as_the_same_user_without_the_role_drops_role_channels() -> None:
    w = await make_world()
    s, t = await w.connect(APP)
    await w.send(s, token("ann", role="admin"))
    for channel in ("admin", "ops-1", "members", "inbox-ann", "open", "presence-p"):
        await w.send(s, {"type": "subscribe", "channel": channel})
    assert [m["type"] for m in t.take()] == ["connected", "authenticated"] + ["subscribed"] * 6
    await w.send(s, token("ann", role="ops"))
    assert t.take() == [
        {"type": "unsubscribed", "channel": "admin", "reason": "reauthenticated"},
        {"type": "authenticated", "user": {"id": "ann", "role": "ops"}},
    ]
    await w.send(s, token("ann"))  # no role at all
    assert t.take() == [
        {"type": "unsubscribed", "channel": "ops-1", "reason": "reauthenticated"},
        {"type": "authenticated", "user": {"id": "ann"}},
    ]
    assert list(s.subscriptions) == ["members", "inbox-ann", "open", "presence-p"]
    api = w.core.api(APP)
    assert await api.count("admin") == 0
    assert await api.count("ops-1") == 0
    # A broadcast on the dropped channel no longer reaches the client.
    await api.broadcast("admin", "secret")
    assert t.take() == []


@pytest.mark.gen_test
async def test_auth_as_another_user_rechecks_owner_channels_and_keeps_public_ones() -> None:
    w = await make_world()
    s, t = await w.connect(APP)
    await w.send(s, token("ann", role="admin"))
    for channel in ("inbox-ann", "open", "admin", "presence-p"):
        await w.send(s, {"type": "subscribe", "channel": channel})
    t.take()
    await w.send(s, token("bob", role="admin"))
    assert t.take() == [
        {"type": "unsubscribed", "channel": "inbox-ann", "reason": "reauthenticated"},
        {"type": "unsubscribed", "channel": "admin", "reason": "reauthenticated"},
        {"type": "unsubscribed", "channel": "presence-p", "reason": "reauthenticated"},
        {"type": "authenticated", "user": {"id": "bob", "role": "admin"}},
    ]
    assert list(s.subscriptions) == ["open"]
    # As bob, the role channel may be joined again; ann's inbox may not.
    await w.send(s, {"type": "subscribe", "channel": "admin"})
    await w.send(s, {"type": "subscribe", "channel": "inbox-ann"})
    replies = t.take()
    assert replies[0] == {"type": "subscribed", "channel": "admin"}
    assert replies[1]["code"] == "forbidden"


@pytest.mark.gen_test
async def test_a_repeated_subscribe_rechecks_access() -> None:
    w = await make_world()
    s, t = await w.connect(APP)
    await w.send(s, token("ann", role="admin"))
    await w.send(s, {"type": "subscribe", "channel": "open"})
    await w.send(s, {"type": "subscribe", "channel": "admin"})
    t.take()
    await w.send(s, {"type": "subscribe", "channel": "admin"})  # still allowed: idempotent
    assert t.take() == [{"type": "subscribed", "channel": "admin"}]
    # The app is reloaded with stricter rules; a repeated subscribe meets them.
    stricter = make_app(realtime={"channels": {"admin": {"role": "root"}, "open": {"role": "x"}}})
    w.hub.app_state(stricter)
    await w.send(s, {"type": "subscribe", "channel": "admin"})
    assert t.take() == [
        {"type": "unsubscribed", "channel": "admin", "reason": "forbidden"},
        {
            "type": "error",
            "code": "forbidden",
            "error": "your role may not use this channel",
            "channel": "admin",
        },
    ]
    assert "admin" not in s.subscriptions
    assert await w.core.api(stricter).count("admin") == 0


@pytest.mark.gen_test
async def test_token_expiry_covers_role_auth_and_owner_rules() -> None:
    w = await make_world(heartbeat=HeartbeatPolicy(100, 10, 1000))
    s, t = await w.connect(APP)
    short = TOKENS.issue("ann", role="admin", app="chat", ttl_seconds=5, now=int(time.time()))
    await w.send(s, {"type": "auth", "token": short})
    for channel in ("admin", "ops-1", "members", "inbox-ann", "open", "news"):
        await w.send(s, {"type": "subscribe", "channel": channel})
    t.take()
    w.clock.advance(6)
    w.core.scanner.scan()
    await w.core.tasks.drain()
    assert t.take() == [
        {"type": "unsubscribed", "channel": channel, "reason": "token_expired"}
        for channel in ("admin", "ops-1", "members", "inbox-ann")
    ] + [{"type": "error", "code": "unauthorized", "error": "token expired"}]
    assert list(s.subscriptions) == ["open", "news"]


@pytest.mark.gen_test(timeout=20)
async def test_role_change_over_real_sockets(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path, {"chat": RULES}) as rt:
        client = await rt.client("chat", rt.token("ann", role="admin"))
        await client.subscribe("admin")
        await client.send({"type": "auth", "token": rt.token("ann")})
        assert await client.recv_many(2) == [
            {"type": "unsubscribed", "channel": "admin", "reason": "reauthenticated"},
            {"type": "authenticated", "user": {"id": "ann"}},
        ]
        denied = await client.request({"type": "subscribe", "channel": "admin"})
        assert denied["code"] == "forbidden"
        api = rt.plugin.api(rt.app("chat"))
        assert await api.count("admin") == 0
        await api.broadcast("admin", "for admins")
        assert await client.nothing_within(0.2)


class _SlowLeaves(MemoryRegistry):
    """``remove_subscription`` waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(node_id="n1")
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def remove_subscription(
        self, app_uuid: str, channel: str, client_id: str, *, hold_vacancy: bool = False
    ) -> bool:
        self.waiting.set()
        await self.gate.wait()
        return await super().remove_subscription(
            app_uuid, channel, client_id, hold_vacancy=hold_vacancy
        )


@pytest.mark.gen_test
async def test_a_fresh_auth_during_an_expiry_keeps_its_claims() -> None:
    registry = _SlowLeaves()
    w = await make_world(
        heartbeat=HeartbeatPolicy(100, 10, 1000),
        backplane=backplane_with(registry),
    )
    s, t = await w.connect(APP)
    short = TOKENS.issue("ann", app="chat", ttl_seconds=5, now=int(time.time()))
    await w.send(s, {"type": "auth", "token": short})
    await w.send(s, {"type": "subscribe", "channel": "members"})
    t.take()
    w.clock.advance(6)
    w.core.scanner.scan()  # the expiry starts leaving "members", and waits there
    await registry.waiting.wait()
    await w.send(s, token("ann"))  # a fresh token meanwhile
    registry.gate.set()
    await w.core.tasks.drain()
    assert t.take() == [
        {"type": "unsubscribed", "channel": "members", "reason": "token_expired"},
        {"type": "authenticated", "user": {"id": "ann"}},
    ]
    assert s.claims is not None and s.claims["sub"] == "ann"
    await w.send(s, {"type": "subscribe", "channel": "members"})
    assert t.take() == [{"type": "subscribed", "channel": "members"}]
