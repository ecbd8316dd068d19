"""What both backplane conformance suites share: waiting helpers, a recording handler,
and fresh app uuids so tests sharing one medium never see each other.

Exactly-once is checked with a sentinel: after the message under test, another
node publishes a sentinel on the same topic, and Redis (like the memory
broker) delivers in order, so once the sentinel has arrived any duplicate or
echo would have arrived too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import tornado.ioloop

from fazt.realtime.backplane.bus import Bus
from fazt.realtime.backplane.history import StreamPosition
from fazt.realtime.backplane.registry import Registry

WAIT_SECONDS = 5.0
_counter = itertools.count()


async def eventually(
    predicate: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Wait until ``predicate()`` holds; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def eventually_async(
    probe: Callable[[], Any], expected: Any, what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Wait until ``await probe()`` equals ``expected``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value == expected:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value!r}, want {expected!r}")
        await asyncio.sleep(0.01)


@dataclass
class RecordingHandler:
    """A ``BusHandler`` and ``RegistryHandler`` that records every call (the hub, faked)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    fail: bool = False

    def _record(self, *event: Any) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("hub callback failure (on purpose)")

    def deliver_channel(self, app_uuid: str, channel: str, payload: bytes) -> None:
        self._record("channel", app_uuid, channel, payload)

    def deliver_publication(
        self,
        app_uuid: str,
        channel: str,
        payload: bytes,
        position: StreamPosition,
        exclude: str | None,
    ) -> None:
        self._record("publication", app_uuid, channel, payload, position, exclude)

    def deliver_app(self, app_uuid: str, payload: bytes) -> None:
        self._record("app", app_uuid, payload)

    def kick_local(self, app_uuid: str, client_id: str, reason: str) -> None:
        self._record("kick", app_uuid, client_id, reason)

    def presence_expired(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        self._record("expired", app_uuid, channel, member)

    def channel_vacated(self, app_uuid: str, channel: str) -> None:
        self._record("vacated", app_uuid, channel)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]

    def payloads(self, channel: str | None = None) -> list[bytes]:
        return [
            event[-1]
            for event in self.events
            if (event[0] == "channel" and (channel is None or event[2] == channel))
            or (event[0] == "app" and channel is None)
        ]


P = TypeVar("P", Bus, Registry)


class Cluster(Generic[P]):
    """Builds nodes of one backend (their bus, or their registry) on one shared medium.

    A backend overrides ``make`` and ``kill``; ``add`` starts a node with a
    ``RecordingHandler`` and ``close`` stops every node still alive.
    """

    def __init__(self) -> None:
        self.nodes: list[tuple[P, RecordingHandler]] = []
        self.killed: list[P] = []

    def make(self, ttl: float) -> P:
        raise NotImplementedError

    async def kill(self, part: P) -> None:
        """Make the node die as with ``kill -9``: no cleanup, no more refreshing."""
        raise NotImplementedError

    async def add(self, ttl: float = 30.0) -> tuple[P, RecordingHandler]:
        part = self.make(ttl)
        handler = RecordingHandler()
        await part.start(handler)
        self.nodes.append((part, handler))
        return part, handler

    async def crash(self, part: P) -> None:
        await self.kill(part)
        self.killed.append(part)

    async def close(self) -> None:
        for part, _ in self.nodes:
            if part not in self.killed:
                await part.stop()


def new_app() -> str:
    """A fresh app uuid, so tests sharing one medium never see each other."""
    return f"app-{next(_counter)}-{id(object()):x}"


def run_close(io_loop: tornado.ioloop.IOLoop, cluster: Cluster[Any]) -> None:
    io_loop.run_sync(cluster.close, timeout=WAIT_SECONDS)
