"""A dead node's presence members leave everywhere, whichever node sweeps them.

When a worker dies and its replacement starts, the replacement is a node with
no clients yet, and it may be the one whose liveness sweep claims the dead
node. Its hub then has no state for the app; the leave must still reach the
subscribers on the other nodes.
"""

from __future__ import annotations

import asyncio

import pytest

from fazt.realtime.backplane.node import MemoryNetwork, memory_backplane
from tests.realtime.world import claims, make_app, make_world


@pytest.mark.gen_test
async def test_a_node_without_the_app_still_announces_a_swept_leave() -> None:
    network = MemoryNetwork()
    watching = await make_world(backplane=memory_backplane(network, "n1"))
    fresh = await make_world(backplane=memory_backplane(network, "n2"))
    app = make_app()
    watcher, transport = await watching.connect(app, claims("wat"))
    await watching.send(watcher, {"type": "subscribe", "channel": "presence-room"})
    transport.take()
    try:
        # The sweep on the fresh node reports a member of a dead node.
        fresh.core.relay.presence_expired(
            app.uuid, "presence-room", {"id": "ghost", "name": "Ghost"}
        )
        await fresh.core.tasks.drain()
        for _ in range(100):
            if transport.frames:
                break
            await asyncio.sleep(0.01)
        assert transport.take() == [
            {
                "type": "presence",
                "channel": "presence-room",
                "event": "leave",
                "client": {"id": "ghost", "name": "Ghost"},
            }
        ]
    finally:
        for world in (watching, fresh):
            await world.core.backplane.stop()
