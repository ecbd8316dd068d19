"""Jobs for driving ``FairScheduler`` without an engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext
from fazt.js_bridge.jobs import Job

_loop = asyncio.new_event_loop()


def job_for(uuid: str) -> Job:
    """A job of the app ``uuid`` that nobody will run (its future is never awaited)."""
    app = App(slug=uuid, uuid=uuid, root=Path("/nonexistent"))
    return Job(
        HostCallContext(app=app),
        Path("/nonexistent/api/x.js"),
        Path("/nonexistent/api"),
        {},
        b"",
        _loop,
        _loop.create_future(),
        lambda future, response, defer_wake=False: None,
        lambda callback: None,
        lambda release: release(),
        deadline=0.0,
    )
