"""``connected`` is always a connection's first frame, however long its registration takes.

On Redis, registering a connection suspends; an app-wide ``broadcastAll`` (or a
kick) that comes meanwhile must not reach the client before ``connected``. The
reliability run on Redis found exactly that. A registry whose
``add_connection`` waits for the test stands in for a slow backend.
"""

from __future__ import annotations

import asyncio

import pytest

from fazt.realtime.backplane.registry_memory import MemoryRegistry
from tests.realtime.world import backplane_with, make_app, make_world

APP = make_app()


class SlowRegistry(MemoryRegistry):
    """``add_connection`` waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(node_id="n1")
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def add_connection(self, app_uuid: str, client_id: str) -> None:
        self.waiting.set()
        await self.gate.wait()
        await super().add_connection(app_uuid, client_id)


@pytest.mark.gen_test
async def test_nothing_reaches_a_client_before_connected() -> None:
    registry = SlowRegistry()
    w = await make_world(backplane=backplane_with(registry))
    registry.gate.set()
    early, early_transport = await w.connect(APP)
    registry.gate.clear()
    registry.waiting.clear()
    connecting = asyncio.ensure_future(w.connect(APP))
    await registry.waiting.wait()
    await w.core.api(APP).broadcast_all("while you were connecting")
    registry.gate.set()
    session, transport = await connecting
    messages = transport.take()
    assert messages[0] == {"type": "connected", "clientId": session.client_id}
    assert messages[1:] == []  # sent before it was connected: not delivered
    assert early_transport.take()[1:] == [
        {"type": "message", "data": "while you were connecting", "timestamp": 42}
    ]
    # From connected on, it gets everything.
    await w.core.api(APP).broadcast_all("now")
    assert transport.take() == [{"type": "message", "data": "now", "timestamp": 42}]
    assert early.client_id != session.client_id


@pytest.mark.gen_test
async def test_a_kick_while_connecting_closes_without_a_frame_and_releases() -> None:
    registry = SlowRegistry()
    w = await make_world(backplane=backplane_with(registry))
    connecting = asyncio.ensure_future(w.connect(APP))
    await registry.waiting.wait()
    (pending,) = w.hub.app_state(APP).sessions.values()
    assert w.hub.kick(APP.uuid, pending.client_id, "too early")
    registry.gate.set()
    session, transport = await connecting
    assert transport.take() == []
    assert transport.closed_with == (4003, "kicked")
    await w.disconnect(session)  # the handler reports the close
    assert w.hub.connection_count() == 0
    assert await w.core.api(APP).count() == 0
