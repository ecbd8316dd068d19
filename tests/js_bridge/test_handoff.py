"""Batched hand-offs between the IOLoop and the workers (engine driven directly).

Jobs submitted in one loop iteration reach the queue together, and responses
finished together come back with one wake-up; each must still reach its own
request, and a close() between submit and flush must not strand anyone.
"""

from __future__ import annotations

import asyncio
import json

import pytest

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
