"""``CpuBudget``: charged with this thread's CPU time, from the request's first slice."""

from __future__ import annotations

import time

from fazt.js_bridge.runtime import CpuBudget


def _burn_cpu() -> None:
    """Spend some CPU time on this thread (until its CPU clock visibly moves)."""
    start = time.thread_time()
    while time.thread_time() - start < 0.005:
        pass


def test_budget_starts_at_the_first_slice_and_then_counts_down() -> None:
    budget = CpuBudget(1.0)
    _burn_cpu()  # bridge work before the first slice is not the handler's
    assert budget.used() == 0.0
    assert budget.remaining() == 1.0  # the first slice gets the whole budget
    _burn_cpu()
    used = budget.used()
    assert used >= 0.005
    assert budget.remaining() <= 1.0 - used


def test_an_empty_budget_has_nothing_left_even_for_the_first_slice() -> None:
    assert CpuBudget(0.0).remaining() <= 0
