"""A realtime node whose hooks run real JS: a ``World``, a ``JsEngine`` and an app folder.

The app's ``api/_realtime.js`` is written into a temporary folder; the engine
offers ``fazt.realtime`` (this node's server API) and ``fazt.test``:
``record(...)`` appends its arguments to ``HookRecorder.events`` (so a test
sees which hook ran, on which node, with what) and ``nap(seconds)`` resolves
after that long (a slow hook without burning CPU).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext, HostFunction
from fazt.js_bridge import JsEngine
from fazt.realtime.api import js_namespace
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.hooks import HOOK_MODULE, HookSettings, JsHookCaller
from fazt.realtime.limits import Limits
from fazt.realtime.session import Session
from tests.realtime.backplane.support import eventually
from tests.realtime.fakes import FakeTransport
from tests.realtime.world import World, claims, make_world

#: Hooks that record every event they see (the tests' default module).
RECORDING_HOOKS = """
exports.onJoin = ({ channel, member }) => fazt.test.record('onJoin', channel, member.id);
exports.onLeave = ({ channel, member }) => fazt.test.record('onLeave', channel, member.id);
exports.onOccupied = ({ channel }) => fazt.test.record('onOccupied', channel);
exports.onVacated = ({ channel }) => fazt.test.record('onVacated', channel);
"""


@dataclass
class HookRecorder:
    """``fazt.test``: what the hooks recorded, in order."""

    events: list[list[Any]] = field(default_factory=list)

    def namespace(self) -> dict[str, HostFunction]:
        async def record(_ctx: HostCallContext, args: list[Any]) -> None:
            self.events.append(args)

        async def nap(_ctx: HostCallContext, args: list[Any]) -> None:
            await asyncio.sleep(float(args[0]))

        return {"record": record, "nap": nap}

    def of(self, hook: str) -> list[list[Any]]:
        return [event for event in self.events if event and event[0] == hook]


def hooked_app(
    root: Path,
    source: str,
    channels: Mapping[str, Mapping[str, Any]],
    slug: str = "chat",
) -> App:
    """An app folder ``root/<slug>`` whose ``api/_realtime.js`` is ``source``."""
    folder = root / slug
    (folder / "api").mkdir(parents=True, exist_ok=True)
    (folder / "api" / HOOK_MODULE).write_text(source, "utf-8")
    manifest = {"realtime": {"channels": {name: dict(rule) for name, rule in channels.items()}}}
    return App(slug=slug, uuid=f"app_{slug}", root=folder, manifest=manifest)


@dataclass
class HookedNode:
    world: World
    engine: JsEngine
    recorder: HookRecorder

    async def close(self) -> None:
        """Stop the core (settling held vacancies, running their hooks), then the engine."""
        try:
            for session in list(self.world.hub.sessions()):
                await self.world.disconnect(session)
            await self.world.core.stop(0)
        finally:
            self.engine.close()

    async def client(self, app: App, sub: str | None = None) -> tuple[Session, FakeTransport]:
        """A connected client (signed in as ``sub``), its ``connected`` frame already read."""
        session, transport = await self.world.connect(app, claims(sub) if sub else None)
        transport.take()
        return session, transport

    async def wait_for(self, predicate: Callable[[HookRecorder], bool], what: str) -> None:
        await eventually(lambda: predicate(self.recorder), what)


async def hooked_node(
    settings: HookSettings | None = None,
    *,
    backplane: Backplane | None = None,
    limits: Limits | None = None,
    max_concurrent_per_app: int = 8,
) -> HookedNode:
    """A started node whose hooks run on a fresh two-thread engine."""
    engine = JsEngine(threads=2, max_concurrent_per_app=max_concurrent_per_app)
    recorder = HookRecorder()
    engine.register_namespace("test", recorder.namespace())
    try:
        world = await make_world(
            limits,
            backplane=backplane,
            hook_caller=JsHookCaller(engine),
            hook_settings=settings or HookSettings(vacated_delay_seconds=0.2),
        )
        engine.register_namespace("realtime", js_namespace(world.core.api))
    except BaseException:
        engine.close()
        raise
    return HookedNode(world, engine, recorder)
