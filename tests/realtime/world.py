"""A realtime core on a real in-memory backplane, with fake transports and a hand-moved clock.

Every decision of the hub, the commands, the membership and the lifecycle can
be tested through it without sockets and without sleeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from fazt.realtime.backplane.bus_memory import MemoryBus
from fazt.realtime.backplane.history_memory import MemoryHistoryStore
from fazt.realtime.backplane.node import Backplane, memory_backplane
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.clocks import Clocks
from fazt.realtime.core import RealtimeCore
from fazt.realtime.hub import Hub
from fazt.realtime.limits import Limits
from fazt.realtime.session import HeartbeatPolicy, Session
from tests.realtime.fakes import Clock, FakeTransport

SECRET = b"k" * 32
TOKENS = TokenService(SECRET)


def make_app(slug: str = "chat", uuid: str = "app_chat", **manifest: Any) -> App:
    return App(slug=slug, uuid=uuid, root=Path("/nonexistent"), manifest=dict(manifest))


def claims(sub: str, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": 2_000_000_000, **extra}


def backplane_with(registry: Registry) -> Backplane:
    """A lone in-memory node around ``registry`` (a test's registry with injected faults
    or delays): a bus and a history store with the registry's node id."""
    bus = MemoryBus(node_id=registry.node_id)
    return Backplane(bus, registry, MemoryHistoryStore(bus))


class World:
    """A started core, its clock and the limit warnings it sent, with client helpers."""

    def __init__(self, core: RealtimeCore, clock: Clock, notes: list[tuple[str, str | None]]):
        self.core = core
        self.clock = clock
        self.notes = notes

    @property
    def hub(self) -> Hub:
        return self.core.hub

    async def connect(
        self, app: App, claims: dict[str, Any] | None = None
    ) -> tuple[Session, FakeTransport]:
        transport = FakeTransport()
        session = await self.core.connect(app, transport, claims)
        return session, transport

    async def send(self, session: Session, message: Any) -> None:
        await self.core.commands.handle(session, json.dumps(message))

    async def handle(self, session: Session, text: str) -> None:
        await self.core.commands.handle(session, text)

    async def disconnect(self, session: Session) -> None:
        await self.core.commands.disconnect(session)


async def make_world(
    limits: Limits | None = None,
    heartbeat: HeartbeatPolicy | None = None,
    backplane: Backplane | None = None,
    **core_options: Any,
) -> World:
    """A started core; ``core_options`` go to ``RealtimeCore`` (hooks, for instance)."""
    clock = Clock()
    notes: list[tuple[str, str | None]] = []
    core = RealtimeCore(
        backplane or memory_backplane(),
        TOKENS,
        limits=limits,
        heartbeat=heartbeat,
        notify=lambda name, _m, app, _d: notes.append((name, app)),
        clocks=Clocks(monotonic=clock, wall_ms=lambda: 42),
        **core_options,
    )
    await core.start()
    return World(core, clock, notes)
