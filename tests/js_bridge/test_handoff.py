"""Batched hand-offs between the IOLoop and the workers (engine driven directly).

Jobs submitted in one loop iteration reach the queue together, and responses
finished together come back with one wake-up; each must still reach its own
request, and a close() between submit and flush must not strand anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from fazt.js_bridge import handoff
from fazt.js_bridge.loop_turns import install_turn_hook, installed_hooks
from tests.js_bridge.conftest import JsHarness, make_request

pytestmark = pytest.mark.gen_test(timeout=10)


async def test_a_burst_of_requests_each_gets_its_own_response(js: JsHarness) -> None:
    js.write("echo.js", "module.exports = (req) => ({ json: { n: Number(req.query.n) } });")
    js.write("later.js", "module.exports = async (req) => ({ json: { n: Number(req.query.n) } });")
    # All submitted in one loop iteration, so they go to the workers as one batch.
    responses = await asyncio.gather(
        *(
            js.run("echo.js" if n % 2 else "later.js", request=make_request(query={"n": str(n)}))
            for n in range(60)
        )
    )
    assert [json.loads(r.body) for r in responses] == [{"n": n} for n in range(60)]
    assert {r.status for r in responses} == {200}


async def test_close_after_submit_before_the_batch_is_queued_answers_503(
    js: JsHarness,
) -> None:
    js.write("ok.js", "module.exports = () => ({ json: 1 });")
    tasks = [asyncio.ensure_future(js.run("ok.js")) for _ in range(3)]
    # The tasks run (and submit) before this coroutine resumes; the batch is
    # flushed to the queue only after it, so close() lands in between.
    await asyncio.sleep(0)
    js.engine.close()
    responses = await asyncio.gather(*tasks)
    assert [(r.status, json.loads(r.body)) for r in responses] == [
        (503, {"error": "the JS engine is shut down"})
    ] * 3


async def test_a_cancelled_request_does_not_disturb_the_rest_of_its_batch(
    js: JsHarness,
) -> None:
    js.write("ok.js", "module.exports = (req) => ({ json: req.query.n });")
    tasks = [
        asyncio.ensure_future(js.run("ok.js", request=make_request(query={"n": str(n)})))
        for n in range(5)
    ]
    await asyncio.sleep(0)
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [json.loads(r.body) for i, r in enumerate(done) if i != 2] == ["0", "1", "3", "4"]


# -- the end of the loop's turn ----------------------------------------------------------


@contextlib.contextmanager
def counted_wakeups() -> Iterator[list[object]]:
    """The callbacks other threads hand the running loop (``call_soon_threadsafe``:
    each one wakes a sleeping loop) while the block runs."""
    loop = asyncio.get_running_loop()
    wakes: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakes.append(callback)
        return real(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        yield wakes
    finally:
        del loop.call_soon_threadsafe  # the instance attribute goes; the loop's own is back


async def test_a_batch_of_answers_wakes_the_loop_once(js1: JsHarness) -> None:
    """The worker holds the sleeping loop's wake-up back until it runs out of jobs."""
    js1.write("ok.js", "module.exports = (req) => ({ json: Number(req.query.n) });")
    await js1.run("ok.js")  # a warm context, so the batch below runs back to back
    with counted_wakeups() as wakes:
        responses = await asyncio.gather(
            *(js1.run("ok.js", request=make_request(query={"n": str(n)})) for n in range(40))
        )
    assert [json.loads(r.body) for r in responses] == list(range(40))
    assert len(wakes) <= 1


async def test_an_answer_held_back_behind_a_long_job_still_comes_at_once(
    js1: JsHarness,
) -> None:
    """The loop looks for answers while a worker runs: a quick answer does not wait
    for the long job the worker took after it."""
    js1.write("quick.js", "module.exports = () => ({ json: 'quick' });")
    js1.write(
        "slow.js",
        "module.exports = () => { const end = Date.now() + 400; while (Date.now() < end) {}"
        " return { json: 'slow' }; };",
    )
    await js1.run("quick.js")
    loop = asyncio.get_running_loop()
    started = loop.time()
    quick = asyncio.ensure_future(js1.run("quick.js"))
    slow = asyncio.ensure_future(js1.run("slow.js"))
    assert json.loads((await quick).body) == "quick"
    quick_after = loop.time() - started
    assert json.loads((await slow).body) == "slow"
    assert quick_after < 0.2 < loop.time() - started


async def test_the_loop_does_not_poll_while_no_job_is_out(js: JsHarness) -> None:
    """Between requests the loop sleeps as long as it likes (no timer of the bridge)."""
    js.write("ok.js", "module.exports = () => ({ json: 1 });")
    await js.run("ok.js")
    loop = asyncio.get_running_loop()
    selector: Any = loop._selector  # type: ignore[attr-defined]
    waits: list[float | None] = []
    hooks = selector.select.fazt_turn_hooks

    class Recorder:
        def before_wait(self, timeout: float | None) -> float | None:
            waits.append(timeout)
            return timeout

        def after_wait(self) -> None:
            pass

    hooks.append(Recorder())
    try:
        await asyncio.sleep(0.05)
    finally:
        hooks.pop()
    assert max(t for t in waits if t is not None) > 0.04
    assert len(waits) <= 4


async def test_a_loop_without_a_selector_uses_the_plain_hand_offs(js: JsHarness) -> None:
    uvloop = pytest.importorskip("uvloop")
    js.write("ok.js", "module.exports = async (req) => ({ json: await fazt.test.echo(1) });")
    result: list[Any] = []

    def on_uvloop() -> None:
        async def main() -> None:
            result.append(await js.json("ok.js"))

        loop = uvloop.new_event_loop()
        result.append(install_turn_hook(loop, NoHook()))
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=on_uvloop)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert result == [False, {"app": "alpha", "args": [1]}]


class NoHook:
    def before_wait(self, timeout: float | None) -> float | None:
        return timeout

    def after_wait(self) -> None:
        pass


async def test_a_slow_handler_stalls_the_loop_at_most_once(js1: JsHarness) -> None:
    """The loop waits briefly for a free worker's batch, never for a slow handler:
    after one wait that runs out it stops waiting (ticks keep coming)."""
    js1.write(
        "slow.js",
        "module.exports = () => { const end = Date.now() + 400; while (Date.now() < end) {}"
        " return { json: 'slow' }; };",
    )
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    for _ in range(3):
        assert json.loads((await js1.run("slow.js")).body) == "slow"
    stop.set()
    await ticker
    # A wait that ran out stalls the loop 2 ms; waiting for the whole handler, 400.
    assert max(gaps) < 0.2, max(gaps)


async def test_host_calls_end_the_loops_wait_for_the_batch(
    js1: JsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that needs the loop for host calls stops the loop's wait at once.

    With a 5 s bound on the wait, a worker that did not would hold each request
    up for 5 s (the loop runs host calls only once it stops waiting).
    """
    monkeypatch.setattr(handoff, "GATE_SECONDS", 5.0)
    js1.write(
        "chain.js",
        "module.exports = async () => { let n = 0;"
        " for (let i = 0; i < 5; i++) { n += (await fazt.test.echo(i)).args[0]; }"
        " return { json: n }; };",
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        assert json.loads((await js1.run("chain.js")).body) == sum(range(5))
    assert loop.time() - started < 4.0


async def test_the_host_calls_of_one_turn_reach_the_loop_in_one_hand_off(
    js1: JsHarness,
) -> None:
    js1.write(
        "fan.js",
        "module.exports = async () => {"
        " const all = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => fazt.test.echo(i)));"
        " return { json: all.map((r) => r.args[0]) }; };",
    )
    await js1.run("fan.js")
    with counted_wakeups() as wakes:
        assert await js1.json("fan.js") == [0, 1, 2, 3, 4, 5]
    # At most one for the six calls and one for the answer (six, one per call, before).
    assert len(wakes) <= 2, wakes


async def test_an_engine_serving_two_loops_in_turn_hooks_each_loop_once(js: JsHarness) -> None:
    js.write("ok.js", "module.exports = () => ({ json: 1 });")
    loop = asyncio.get_running_loop()
    assert await js.json("ok.js") == 1
    hooks = len(installed_hooks(loop))

    def elsewhere() -> None:
        other = asyncio.new_event_loop()
        try:
            other.run_until_complete(js.json("ok.js"))
        finally:
            other.close()

    for _ in range(3):
        await loop.run_in_executor(None, elsewhere)
        assert await js.json("ok.js") == 1
    assert len(installed_hooks(loop)) == hooks == 1
