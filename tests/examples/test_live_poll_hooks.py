"""examples/live-poll's occupancy hooks: the app log records when the poll is watched."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.examples.conftest import examples_kernel

DELAY = 0.3
WATCHED = 'poll "poll" is being watched'
UNWATCHED = 'poll "poll" is not watched any more'


def poll_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fazt.app.live-poll"]


async def wait_for_line(caplog: pytest.LogCaptureFixture, line: str, count: int) -> None:
    for _ in range(300):
        if poll_log(caplog).count(line) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {line!r} x{count} in {poll_log(caplog)}")


@pytest.mark.gen_test(timeout=30)
async def test_the_log_says_when_the_poll_is_watched_and_when_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"realtime": {"hooks": {"vacatedDelaySeconds": DELAY}}}
    caplog.set_level(logging.INFO, logger="fazt.app.live-poll")
    async with examples_kernel(tmp_path / "data", config) as (_chat, poll):
        async with poll.socket() as first, poll.socket() as second:
            await first.subscribe("poll")
            await wait_for_line(caplog, WATCHED, 1)
            await second.subscribe("poll")  # a second viewer changes nothing
        await wait_for_line(caplog, UNWATCHED, 1)
        # A viewer who reloads (gone and back within the delay) is no change either.
        async with poll.socket() as viewer:
            await viewer.subscribe("poll")
            await wait_for_line(caplog, WATCHED, 2)
        async with poll.socket() as again:
            await again.subscribe("poll")
            await asyncio.sleep(DELAY * 2)
        await wait_for_line(caplog, UNWATCHED, 2)
        await asyncio.sleep(DELAY * 2)
    assert poll_log(caplog) == [WATCHED, UNWATCHED, WATCHED, UNWATCHED]
