"""Releasing a connection is unconditional: whatever raises, what it holds is released.

A registry that fails on chosen calls stands in for a backend bug or an outage
(a real backend cannot be made to fail one call on demand). Each failing step
must not skip the ones after it, and the error is logged once per connection.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from fazt.realtime.backplane.registry_memory import MemoryRegistry
from fazt.realtime.release import run_every
from fazt.realtime.session import HeartbeatPolicy
from tests.realtime.world import TOKENS, World, backplane_with, claims, make_app, make_world

APP = make_app()


class FaultyRegistry(MemoryRegistry):
    """A memory registry whose calls named in ``failing`` raise before doing anything."""

    def __init__(self) -> None:
        super().__init__(node_id="n1")
        self.failing: set[str] = set()

    def _check(self, name: str) -> None:
        if name in self.failing:
            raise ConnectionError(f"{name} failed")

    async def add_connection(self, app_uuid: str, client_id: str) -> None:
        self._check("add_connection")
        await super().add_connection(app_uuid, client_id)

    async def remove_connection(self, app_uuid: str, client_id: str) -> None:
        self._check("remove_connection")
        await super().remove_connection(app_uuid, client_id)

    async def count_connections(self, app_uuid: str | None = None) -> int:
        self._check("count_connections")
        return await super().count_connections(app_uuid)

    async def add_subscription(
        self, app_uuid: str, channel: str, client_id: str, info: dict[str, Any]
    ) -> bool:
        self._check("add_subscription")
        return await super().add_subscription(app_uuid, channel, client_id, info)

    async def remove_subscription(
        self, app_uuid: str, channel: str, client_id: str, *, hold_vacancy: bool = False
    ) -> bool:
        self._check("remove_subscription")
        return await super().remove_subscription(
            app_uuid, channel, client_id, hold_vacancy=hold_vacancy
        )

    async def presence_leave(
        self, app_uuid: str, channel: str, client_id: str, user_id: str
    ) -> bool:
        self._check("presence_leave")
        return await super().presence_leave(app_uuid, channel, client_id, user_id)


async def faulty_world(**kwargs: Any) -> tuple[World, FaultyRegistry]:
    registry = FaultyRegistry()
    world = await make_world(backplane=backplane_with(registry), **kwargs)
    return world, registry


def errors_about(caplog: pytest.LogCaptureFixture, client_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and client_id in record.getMessage()
    ]


@pytest.mark.gen_test
async def test_run_every_runs_each_step_and_raises_the_first_error() -> None:
    ran: list[str] = []

    def step(name: str, fails: bool = False) -> Any:
        async def run() -> None:
            ran.append(name)
            if fails:
                raise ValueError(name)

        return run

    with pytest.raises(ValueError, match=r"^b$"):
        await run_every([step("a"), step("b", True), step("c", True), step("d")])
    assert ran == ["a", "b", "c", "d"]
    await run_every([])


@pytest.mark.parametrize(
    "failing", ["remove_subscription", "presence_leave", "remove_connection", "count_connections"]
)
@pytest.mark.gen_test
async def test_a_failing_disconnect_step_never_skips_the_next(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    w, registry = await faulty_world()
    ann, _ = await w.connect(APP, claims("ann"))
    bob, tb = await w.connect(APP, claims("bob"))
    for channel in ("presence-lobby", "news", "room"):
        await w.send(ann, {"type": "subscribe", "channel": channel})
    await w.send(bob, {"type": "subscribe", "channel": "presence-lobby"})
    tb.take()
    registry.failing.add(failing)
    await w.disconnect(ann)
    registry.failing.clear()
    # Locally, everything is gone whatever failed.
    state = w.hub.app_state(APP)
    assert list(state.sessions) == [bob.client_id]
    assert set(state.channels) == {"presence-lobby"}
    assert not ann.subscriptions
    # In the registry, every step but the failing one was done.
    api = w.core.api(APP)
    if failing != "remove_connection":
        assert await api.count() == 1
    if failing != "remove_subscription":
        assert await api.count("news") == 0
        assert await api.count("room") == 0
        assert await api.count("presence-lobby") == 1
    if failing != "presence_leave":
        assert await registry.presence_members(APP.uuid, "presence-lobby") == [{"id": "bob"}]
        assert tb.take() == [
            {
                "type": "presence",
                "channel": "presence-lobby",
                "event": "leave",
                "client": {"id": "ann"},
            }
        ]
    # One error record for the connection, whatever number of steps failed.
    assert len(errors_about(caplog, ann.client_id)) == 1


@pytest.mark.gen_test
async def test_every_step_failing_still_releases_the_local_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, registry = await faulty_world()
    ann, _ = await w.connect(APP, claims("ann"))
    for channel in ("presence-lobby", "news"):
        await w.send(ann, {"type": "subscribe", "channel": channel})
    registry.failing.update(
        {"remove_subscription", "presence_leave", "remove_connection", "count_connections"}
    )
    await w.disconnect(ann)
    assert w.hub.connection_count() == 0
    assert w.hub.app_state(APP).channels == {}
    assert len(errors_about(caplog, ann.client_id)) == 1


@pytest.mark.gen_test
async def test_a_failed_connect_is_closed_1011_and_released(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, registry = await faulty_world()
    registry.failing.add("add_connection")
    session, transport = await w.connect(APP)
    assert transport.closed_with == (1011, "internal error")
    assert session.closed
    assert w.hub.connection_count() == 0
    registry.failing.clear()
    assert await w.core.api(APP).count() == 0
    assert len(errors_about(caplog, session.client_id)) == 1


@pytest.mark.gen_test
async def test_claims_that_cannot_be_encoded_behind_the_edge_close_1011_without_a_leak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The token service and the realtime edge refuse such claims; if a value got
    # past them anyway (a bug), the connection is still closed and released.
    w, _registry = await faulty_world()
    session, transport = await w.connect(APP, claims("mallory", name="\ud800"))
    assert transport.closed_with == (1011, "internal error")
    assert w.hub.connection_count() == 0
    assert await w.core.api(APP).count() == 0
    assert len(errors_about(caplog, session.client_id)) == 1


@pytest.mark.gen_test
async def test_errors_of_one_connection_are_logged_once_and_each_subscribe_is_taken_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, registry = await faulty_world()
    s, t = await w.connect(APP)
    t.take()
    registry.failing.add("add_subscription")
    for _ in range(5):
        await w.send(s, {"type": "subscribe", "channel": "news"})
        # Not subscribed without having been told so: the subscription was taken back.
        assert not s.subscriptions
        assert w.hub.app_state(APP).channels == {}
    assert t.take() == []
    assert t.closed_with is None
    assert len(errors_about(caplog, s.client_id)) == 1
    registry.failing.clear()
    await w.send(s, {"type": "subscribe", "channel": "news"})
    assert t.take() == [{"type": "subscribed", "channel": "news"}]
    assert await w.core.api(APP).count("news") == 1


@pytest.mark.gen_test
async def test_token_expiry_drops_the_identity_even_when_a_leave_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, registry = await faulty_world(heartbeat=HeartbeatPolicy(100, 10, 1000))
    s, t = await w.connect(APP)
    token = TOKENS.issue("eve", ttl_seconds=5, now=int(time.time()))
    await w.send(s, {"type": "auth", "token": token})
    for channel in ("presence-a", "private-b"):
        await w.send(s, {"type": "subscribe", "channel": channel})
    t.take()
    registry.failing.add("remove_subscription")
    w.clock.advance(6)
    w.core.scanner.scan()
    await w.core.tasks.drain()
    assert t.take() == [
        {"type": "unsubscribed", "channel": "presence-a", "reason": "token_expired"},
        {"type": "unsubscribed", "channel": "private-b", "reason": "token_expired"},
        {"type": "error", "code": "unauthorized", "error": "token expired"},
    ]
    assert s.claims is None and not s.subscriptions
    assert await registry.presence_members(APP.uuid, "presence-a") == []
    assert len(errors_about(caplog, s.client_id)) == 1
