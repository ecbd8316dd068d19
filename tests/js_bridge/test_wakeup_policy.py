"""The JS workers run under SCHED_BATCH, and the IOLoop thread only while it waits for one."""

from __future__ import annotations

import asyncio
import os
import threading
import time
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


def policy_while_blocked(run: Callable[[threading.Lock], object]) -> tuple[int, object]:
    """The policy of a fresh thread seen while it blocks in ``run(lock)``, and what
    ``run`` returned once another thread released ``lock``."""
    lock = threading.Lock()
    lock.acquire()
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(run(lock)))
    thread.start()
    deadline = time.monotonic() + 5
    seen = policy_of(thread.native_id or 0)
    while seen != os.SCHED_BATCH and time.monotonic() < deadline:
        time.sleep(0.001)  # until the thread has switched (or never does)
        seen = policy_of(thread.native_id or 0)
    time.sleep(0.01)
    lock.release()
    thread.join(10)
    return seen, outcome[0]


def test_a_thread_under_another_policy_is_left_alone() -> None:
    def idle_then_try() -> tuple[bool, int, bool, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        changed = run_as_batch()
        lock = threading.Lock()
        got = BatchWhileWaiting().acquire(lock, 1.0)
        return changed, policy_of(), got, policy_of()

    assert in_thread(idle_then_try) == (False, os.SCHED_IDLE, True, os.SCHED_IDLE)


def test_acquire_waits_under_batch_and_returns_to_normal() -> None:
    def run(lock: threading.Lock) -> tuple[bool, int]:
        got = BatchWhileWaiting().acquire(lock, 5.0)
        return got, policy_of()

    assert policy_while_blocked(run) == (os.SCHED_BATCH, (True, os.SCHED_OTHER))


def test_acquire_that_times_out_returns_to_normal_too() -> None:
    def run() -> tuple[bool, int]:
        lock = threading.Lock()
        lock.acquire()
        return BatchWhileWaiting().acquire(lock, 0.01), policy_of()

    assert in_thread(run) == (False, os.SCHED_OTHER)


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
async def test_the_loop_blocks_for_a_worker_under_batch_and_returns_to_normal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handoff, "GATE_SECONDS", 5.0)
    loop = asyncio.get_running_loop()
    link = handoff.LoopLink(loop, lambda jobs: False, lambda: False, lambda: True)
    loop_thread = threading.get_native_id()
    seen: list[int] = []

    def worker() -> None:
        deadline = time.monotonic() + 4
        policy = policy_of(loop_thread)
        while policy != os.SCHED_BATCH and time.monotonic() < deadline:
            policy = policy_of(loop_thread)
        seen.append(policy)
        link.run_on_loop(lambda: None)  # needs the loop: ends its wait

    def start() -> bool:
        threading.Thread(target=worker).start()
        return False  # nothing answered at once: the loop blocks on the gate

    started = time.monotonic()
    link._wait_for_worker(start)
    assert time.monotonic() - started < 4.5  # ended by the worker, not the timeout
    assert seen == [os.SCHED_BATCH]
    assert policy_of() == os.SCHED_OTHER
