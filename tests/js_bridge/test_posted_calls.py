"""Postable host functions: settled on the worker, their effects run on the IOLoop in order."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import fazt.js_bridge.host_calls as host_calls_module
from fazt.contracts.host_calls import (
    HostCallContext,
    HostCallError,
    PostableHostFunction,
    Posted,
)
from tests.js_bridge.conftest import HostRecorder, JsHarness, _engine

pytestmark = pytest.mark.gen_test(timeout=10)


class Postbox:
    """``fazt.postbox.send(x)``: posts unless told otherwise by ``x``; records everything.

    ``x`` = ``"loop"``: the post declines (the call runs on the loop); ``"bad"``: the
    post refuses; ``"explode"``: the effect raises; ``"later"``: the effect waits once.
    """

    def __init__(self) -> None:
        #: ("post" | "run" | "effect", value, thread id), in the order they happened.
        self.events: list[tuple[str, Any, int]] = []

    def _note(self, kind: str, value: Any) -> None:
        self.events.append((kind, value, threading.get_ident()))

    def kinds(self) -> list[tuple[str, Any]]:
        return [(kind, value) for kind, value, _ in self.events]

    def function(self) -> PostableHostFunction:
        async def run(ctx: HostCallContext, args: list[Any]) -> Any:
            self._note("run", args[0])
            return {"ran": args[0]}

        def post(ctx: HostCallContext, args: list[Any]) -> Posted | None:
            value = args[0]
            self._note("post", value)
            if value == "loop":
                return None
            if value == "bad":
                raise HostCallError("fazt.postbox.send: bad value")
            return Posted({"posted": value, "app": ctx.app.slug}, lambda: self._effect(value))

        return PostableHostFunction(run, post)

    def _effect(self, value: Any) -> Coroutine[Any, Any, None] | None:
        if value == "explode":
            raise RuntimeError("the effect failed")
        if value == "later":
            return self._later(value)
        self._note("effect", value)
        return None

    async def _later(self, value: Any) -> None:
        await asyncio.sleep(0)
        self._note("effect", value)


@pytest.fixture
def postbox() -> Postbox:
    return Postbox()


@pytest.fixture
def js(tmp_path: Path, host: HostRecorder, postbox: Postbox) -> Iterator[JsHarness]:
    engine = _engine(host, threads=2)
    engine.register_namespace("postbox", {"send": postbox.function()})
    yield JsHarness(engine, tmp_path, host)
    engine.close()


@pytest.fixture
def loop_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many host-call batches crossed to the loop, one entry (its size) per batch."""
    batches: list[int] = []
    original = host_calls_module._LoopTurnCalls.start

    def start(self: Any) -> None:
        batches.append(len(self._calls))
        original(self)

    monkeypatch.setattr(host_calls_module._LoopTurnCalls, "start", start)
    return batches


async def test_a_posted_call_resolves_on_the_worker_and_its_effect_runs_on_the_loop(
    js: JsHarness, postbox: Postbox, loop_batches: list[int]
) -> None:
    js.write("send.js", "module.exports = async () => ({ json: await fazt.postbox.send('a') });")
    assert await js.json("send.js") == {"posted": "a", "app": "alpha"}
    # The effect ran before the response reached the caller, on the loop's thread.
    assert postbox.kinds() == [("post", "a"), ("effect", "a")]
    (_, _, post_thread), (_, _, effect_thread) = postbox.events
    assert effect_thread == threading.get_ident()
    assert post_thread != effect_thread
    assert loop_batches == []  # no host-call hand-off to the loop at all


async def test_effects_run_in_call_order_before_the_next_call_that_needs_the_loop(
    js: JsHarness, postbox: Postbox, host: HostRecorder, loop_batches: list[int]
) -> None:
    js.write(
        "order.js",
        "module.exports = async () => {\n"
        "  await fazt.postbox.send('a');\n"
        "  await fazt.postbox.send('b');\n"
        "  await fazt.test.echo('c');\n"
        "  await fazt.postbox.send('d');\n"
        "};",
    )
    assert (await js.run("order.js")).status == 204
    effects = [value for kind, value in postbox.kinds() if kind == "effect"]
    assert effects == ["a", "b", "d"]
    assert loop_batches == [1]  # only the echo crossed
    assert host.calls == [("echo", "alpha", ["c"])]


async def test_the_effects_before_a_loop_call_have_run_when_it_starts(
    tmp_path: Path, postbox: Postbox
) -> None:
    order: list[str] = []

    async def mark(ctx: HostCallContext, args: list[Any]) -> Any:
        order.append(f"loop call after {[v for k, v in postbox.kinds() if k == 'effect']}")
        return None

    host = HostRecorder()
    engine = _engine(host, threads=1)
    engine.register_namespace("postbox", {"send": postbox.function()})
    engine.register_namespace("marks", {"mark": mark})
    try:
        harness = JsHarness(engine, tmp_path, host)
        harness.write(
            "mark.js",
            "module.exports = async () => {\n"
            "  await fazt.postbox.send('a'); await fazt.postbox.send('b');\n"
            "  await fazt.marks.mark();\n"
            "};",
        )
        assert (await harness.run("mark.js")).status == 204
    finally:
        engine.close()
    assert order == ["loop call after ['a', 'b']"]


async def test_a_batch_with_a_call_that_needs_the_loop_runs_entirely_there(
    js: JsHarness, postbox: Postbox, host: HostRecorder, loop_batches: list[int]
) -> None:
    js.write(
        "mixed.js",
        "module.exports = async () => ({ json: await Promise.all(["
        "fazt.postbox.send('a'), fazt.test.echo('b')]) });",
    )
    assert await js.json("mixed.js") == [{"ran": "a"}, {"app": "alpha", "args": ["b"]}]
    assert ("run", "a") in postbox.kinds()
    assert ("effect", "a") not in postbox.kinds()  # what the post made was dropped
    assert loop_batches == [2]


async def test_a_post_that_declines_runs_the_call_on_the_loop(
    js: JsHarness, postbox: Postbox, loop_batches: list[int]
) -> None:
    js.write("loop.js", "module.exports = async () => ({ json: await fazt.postbox.send('loop') });")
    assert await js.json("loop.js") == {"ran": "loop"}
    assert postbox.kinds() == [("post", "loop"), ("run", "loop")]
    assert loop_batches == [1]


async def test_a_post_refusal_rejects_with_its_message_without_the_loop(
    js: JsHarness, postbox: Postbox, loop_batches: list[int]
) -> None:
    js.write(
        "bad.js",
        "module.exports = async () => {\n"
        "  try { await fazt.postbox.send('bad'); } catch (e) { return e.message; }\n"
        "};",
    )
    assert await js.json("bad.js") == "fazt.postbox.send: bad value"
    assert postbox.kinds() == [("post", "bad")]
    assert loop_batches == []


async def test_effects_run_when_the_handler_fails_after_posting(
    js: JsHarness, postbox: Postbox
) -> None:
    js.write(
        "boom.js",
        "module.exports = async () => { await fazt.postbox.send('a'); throw new Error('boom'); };",
    )
    response = await js.run("boom.js")
    assert response.status == 500
    assert json.loads(response.body) == {"error": "boom"}
    assert ("effect", "a") in postbox.kinds()


async def test_effects_run_when_the_handler_is_stopped_by_its_cpu_limit(
    js: JsHarness, postbox: Postbox
) -> None:
    js.write(
        "spin.js",
        "module.exports = async () => { await fazt.postbox.send('a'); for (;;) {} };",
    )
    response = await js.run("spin.js")
    assert response.status == 503
    assert b"CPU time limit" in response.body
    assert ("effect", "a") in postbox.kinds()


async def test_a_failing_effect_is_logged_and_the_next_one_still_runs(
    js: JsHarness, postbox: Postbox, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        "explode.js",
        "module.exports = async () => {\n"
        "  await fazt.postbox.send('explode'); await fazt.postbox.send('after');\n"
        "  return { json: 'answered' };\n"
        "};",
    )
    with caplog.at_level(logging.ERROR, logger="fazt.js_bridge"):
        assert await js.json("explode.js") == "answered"
    assert ("effect", "after") in postbox.kinds()
    assert any("posted host call failed" in r.getMessage() for r in caplog.records)


async def test_an_effect_that_waits_goes_on_as_a_task(js: JsHarness, postbox: Postbox) -> None:
    js.write("later.js", "module.exports = async () => { await fazt.postbox.send('later'); };")
    assert (await js.run("later.js")).status == 204
    for _ in range(10):
        if ("effect", "later") in postbox.kinds():
            break
        await asyncio.sleep(0.01)
    assert ("effect", "later") in postbox.kinds()


async def test_a_long_run_of_posted_calls_crosses_to_the_loop_with_a_bounded_backlog(
    js: JsHarness, postbox: Postbox, loop_batches: list[int]
) -> None:
    count = 3 * host_calls_module.MAX_WAITING_EFFECTS + 5
    js.write(
        "many.js",
        "module.exports = async () => {\n"
        f"  for (let i = 0; i < {count}; i++) await fazt.postbox.send(i);\n"
        "};",
    )
    assert (await js.run("many.js")).status == 204
    done = [value for kind, value in postbox.kinds() if kind in ("effect", "run")]
    assert done == list(range(count))  # every call's effect, in call order
    # Every MAX_WAITING_EFFECTS + 1st call went to the loop, with the effects before it.
    assert loop_batches == [1, 1, 1]
    waiting = 0
    for kind, _ in postbox.kinds():
        if kind == "post":
            waiting += 1
        elif kind == "run":
            assert waiting <= host_calls_module.MAX_WAITING_EFFECTS + 1
            waiting = 0


async def test_one_batch_of_more_calls_than_may_wait_runs_on_the_loop(
    js: JsHarness, postbox: Postbox, loop_batches: list[int]
) -> None:
    count = host_calls_module.MAX_WAITING_EFFECTS + 1
    js.write(
        "all.js",
        "module.exports = async () => {\n"
        f"  await Promise.all(Array.from({{length: {count}}}, (_, i) => fazt.postbox.send(i)));\n"
        "};",
    )
    assert (await js.run("all.js")).status == 204
    assert [value for kind, value in postbox.kinds() if kind == "run"] == list(range(count))
    assert loop_batches == [count]
