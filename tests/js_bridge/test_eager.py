"""Starting a coroutine at once and making a task of it only when it waits."""

from __future__ import annotations

import asyncio

import pytest

from fazt.js_bridge.eager import start_eagerly

pytestmark = pytest.mark.gen_test(timeout=10)


async def test_a_coroutine_that_never_waits_gives_its_result_without_a_task() -> None:
    ran: list[str] = []

    async def at_once() -> int:
        ran.append("ran")
        return 7

    loop = asyncio.get_running_loop()
    tasks_before = len(asyncio.all_tasks())
    assert start_eagerly(loop, at_once()) == 7
    assert ran == ["ran"]  # before any loop turn
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_coroutine_that_waits_ran_its_first_step_and_goes_on_as_a_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    steps: list[str] = []

    async def waits() -> int:
        steps.append("before")
        value = await gate
        steps.append("after")
        return value + 1

    started = start_eagerly(loop, waits())
    assert isinstance(started, asyncio.Task)
    assert steps == ["before"]
    gate.set_result(41)
    assert await started == 42
    assert steps == ["before", "after"]


async def test_a_coroutine_that_yields_and_sleeps_finishes() -> None:
    async def twice() -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return "done"

    started = start_eagerly(asyncio.get_running_loop(), twice())
    assert isinstance(started, asyncio.Task)
    assert await started == "done"


async def test_an_error_before_the_first_wait_reaches_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        start_eagerly(asyncio.get_running_loop(), fails())


async def test_an_error_after_a_wait_is_the_tasks_and_can_be_caught_inside() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()

    async def caught() -> str:
        try:
            await gate
        except KeyError:
            return "caught"
        return "not raised"

    async def uncaught() -> None:
        await asyncio.sleep(0)
        raise ValueError("later")

    first = start_eagerly(loop, caught())
    assert isinstance(first, asyncio.Task)
    gate.set_exception(KeyError("x"))
    assert await first == "caught"
    second = start_eagerly(loop, uncaught())
    assert isinstance(second, asyncio.Task)
    with pytest.raises(ValueError, match="later"):
        await second


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    cleaned: list[str] = []

    async def forever() -> None:
        try:
            await loop.create_future()
        finally:
            cleaned.append("finally")

    started = start_eagerly(loop, forever())
    assert isinstance(started, asyncio.Task)
    await asyncio.sleep(0)
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started
    assert cleaned == ["finally"]
    assert started.cancelled()
