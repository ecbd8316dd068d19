"""The JS workers run under SCHED_BATCH, and the IOLoop thread only while it waits for one."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pytest

from fazt.js_bridge import handoff
from fazt.js_bridge.wakeup_policy import BatchWhileWaiting, run_as_batch
from tests.js_bridge.conftest import JsHarness

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")


def policy_of(thread_id: int = 0) -> int:
    return os.sched_getscheduler(thread_id)


def in_thread(run: Callable[[], object]) -> object:
    """``run()``'s result, run in a fresh thread (whose policy the test may change)."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(run()))
    thread.start()
    thread.join(10)
    return outcome[0]


def test_run_as_batch_changes_only_the_calling_thread() -> None:
    assert policy_of() == os.SCHED_OTHER
    assert in_thread(lambda: (run_as_batch(), policy_of())) == (True, os.SCHED_BATCH)
    assert policy_of() == os.SCHED_OTHER


def test_a_thread_under_another_policy_is_left_alone() -> None:
    def idle_then_try() -> tuple[bool, int, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        changed = run_as_batch()
        with BatchWhileWaiting().waiting():
            inside = policy_of()
        return changed, inside, policy_of()

    assert in_thread(idle_then_try) == (False, os.SCHED_IDLE, os.SCHED_IDLE)


def test_waiting_is_batch_inside_and_normal_after_even_on_error() -> None:
    def run() -> tuple[int, int, int]:
        batch = BatchWhileWaiting()
        with batch.waiting():
            inside = policy_of()
        after = policy_of()
        try:
            with batch.waiting():
                raise KeyError("boom")
        except KeyError:
            pass
        return inside, after, policy_of()

    assert in_thread(run) == (os.SCHED_BATCH, os.SCHED_OTHER, os.SCHED_OTHER)


@pytest.mark.gen_test(timeout=10)
async def test_the_engines_workers_run_under_batch(js: JsHarness) -> None:
    js.write("ok.js", "module.exports = () => ({ json: { ok: true } });")
    response = await js.run("ok.js")
    assert response.status == 200
    workers = [t for t in threading.enumerate() if t.name.startswith("fazt-js-")]
    assert workers
    assert {policy_of(t.native_id or 0) for t in workers} == {os.SCHED_BATCH}
    assert policy_of() == os.SCHED_OTHER  # the loop's thread, between waits


@pytest.mark.gen_test(timeout=10)
async def test_the_loop_waits_for_a_worker_under_batch_and_returns_to_normal() -> None:
    loop = asyncio.get_running_loop()
    link = handoff.LoopLink(loop, lambda jobs: False, lambda: False, lambda: True)
    seen: list[int] = []

    def start() -> bool:
        seen.append(policy_of())  # on the loop's thread, inside the wait
        return True  # answered at once: no wait on the gate

    link._wait_for_worker(start)
    assert seen == [os.SCHED_BATCH]
    assert policy_of() == os.SCHED_OTHER
