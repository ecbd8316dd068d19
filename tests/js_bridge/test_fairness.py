"""One app cannot starve the others: a per-app cap, fair bounded queues, a wall-clock limit.

Engine driven directly: real worker threads, real QuickJS, the test's IOLoop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fazt.js_bridge import JsEngine
from fazt.js_bridge.scheduler import FairScheduler
from tests.js_bridge.conftest import HostRecorder, JsHarness

pytestmark = pytest.mark.gen_test(timeout=30)

LOOP = "module.exports = () => { for (;;) {} };"
QUICK = "module.exports = () => 'quick';"
# Awaits host calls for ever: holds its worker without using CPU.
HOST_LOOP = "module.exports = async () => { for (;;) await fazt.test.nap(0.01); };"


def harness(tmp_path: Path, host: HostRecorder, **options: float) -> Iterator[JsHarness]:
    engine = JsEngine(**options)  # type: ignore[arg-type]
    engine.register_namespace("test", host.namespace())
    try:
        yield JsHarness(engine, tmp_path, host)
    finally:
        engine.close()


@pytest.fixture
def capped(tmp_path: Path, host: HostRecorder) -> Iterator[JsHarness]:
    """Two threads (so one running handler per app), short limits, a small queue."""
    yield from harness(
        tmp_path,
        host,
        threads=2,
        time_limit_seconds=1.0,
        wall_time_limit_seconds=1.5,
        max_queued_per_app=4,
    )


async def test_the_default_cap_is_half_the_threads() -> None:
    for threads, cap in ((1, 1), (2, 1), (3, 1), (4, 2), (8, 4)):
        engine = JsEngine(threads=threads)
        try:
            assert engine._scheduler.max_running_per_app == cap
        finally:
            engine.close()


async def test_a_looping_app_leaves_the_other_apps_their_workers(capped: JsHarness) -> None:
    capped.write("loop.js", LOOP)
    capped.write("quick.js", QUICK, app="beta")
    hogs = [asyncio.ensure_future(capped.run("loop.js")) for _ in range(4)]
    await asyncio.sleep(0.1)  # alpha's first handler spins; the others wait for its slot
    started = time.monotonic()
    for _ in range(10):
        assert await capped.json("quick.js", app="beta") == "quick"
    assert time.monotonic() - started < 1.0  # never waited for alpha's CPU limit
    statuses = [response.status for response in await asyncio.gather(*hogs)]
    assert statuses.count(503) == 4  # CPU limit for the ones that ran, wall clock for the rest


async def test_an_app_holding_workers_in_host_calls_is_capped_too(capped: JsHarness) -> None:
    capped.write("hold.js", HOST_LOOP)
    capped.write("quick.js", QUICK, app="beta")
    holds = [asyncio.ensure_future(capped.run("hold.js")) for _ in range(4)]
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert [await capped.json("quick.js", app="beta") for _ in range(5)] == ["quick"] * 5
    assert time.monotonic() - started < 1.0
    for response in await asyncio.gather(*holds):
        assert response.status == 503


async def test_wall_clock_limit_stops_a_handler_that_waits_on_host_calls(
    capped: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    capped.write("hold.js", HOST_LOOP)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        response = await capped.run("hold.js")
    elapsed = time.monotonic() - started
    assert (response.status, json.loads(response.body)) == (
        503,
        {"error": "handler exceeded its wall-clock time limit (1.5 s)"},
    )
    assert 1.4 < elapsed < 3.0
    (line,) = [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"]
    assert line.startswith("api/hold.js exceeded its wall-clock time limit (1.5 s")
    # The context was discarded; the app's next request runs normally.
    capped.write("ok.js", QUICK)
    assert await capped.json("ok.js") == "quick"


async def test_wall_clock_limit_stops_one_long_host_call(
    tmp_path: Path, host: HostRecorder
) -> None:
    for js in harness(tmp_path, host, threads=1, wall_time_limit_seconds=0.5):
        js.write("nap.js", "module.exports = async () => await fazt.test.nap(5);")
        started = time.monotonic()
        response = await js.run("nap.js")
        assert response.status == 503
        assert "wall-clock time limit (0.5 s)" in json.loads(response.body)["error"]
        assert time.monotonic() - started < 1.5


async def test_a_full_queue_answers_503_with_retry_after(capped: JsHarness) -> None:
    capped.write("hold.js", HOST_LOOP)
    # 1 running + 4 waiting fit; the sixth is refused at once.
    held = [asyncio.ensure_future(capped.run("hold.js"))]
    await asyncio.sleep(0.1)
    held += [asyncio.ensure_future(capped.run("hold.js")) for _ in range(4)]
    await asyncio.sleep(0.1)
    started = time.monotonic()
    refused = await capped.run("hold.js")
    assert time.monotonic() - started < 0.5
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["Content-Type"].startswith("application/json")
    assert json.loads(refused.body) == {
        "error": "too many requests are waiting for this app's JS handlers; retry later"
    }
    # Another app's queue is its own.
    capped.write("quick.js", QUICK, app="beta")
    assert await capped.json("quick.js", app="beta") == "quick"
    for response in await asyncio.gather(*held):
        assert response.status == 503


async def test_a_request_that_waited_its_whole_wall_time_in_the_queue_is_told_to_retry(
    capped: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    capped.write("hold.js", HOST_LOOP)
    first = asyncio.ensure_future(capped.run("hold.js"))
    await asyncio.sleep(0.6)
    # Both wait for `first` (1.5 s); the second then runs for the 0.6 s it has left and
    # into its own limit, so the third's wall-clock time is up before it could start.
    with caplog.at_level(logging.WARNING, logger="fazt.app.alpha"):
        second, third = await asyncio.gather(capped.run("hold.js"), capped.run("hold.js"))
    assert (await first).status == 503 and second.status == 503
    assert "wall-clock" in json.loads(second.body)["error"]
    assert third.status == 503 and third.headers["Retry-After"] == "1"
    assert "retry later" in json.loads(third.body)["error"]
    assert any("waited 1.5 s for a free JS worker" in r.getMessage() for r in caplog.records)


async def test_requests_of_one_app_run_one_at_a_time_under_a_cap_of_one(
    capped: JsHarness, host: HostRecorder
) -> None:
    # `wait` resolves only when `release` runs. With one slot for alpha, `release`
    # cannot start while `wait` holds it, so `wait` runs into its wall-clock limit.
    capped.write("wait.js", "module.exports = async () => await fazt.test.wait();")
    capped.write("release.js", "module.exports = async () => await fazt.test.release();")
    waiting = asyncio.ensure_future(capped.run("wait.js"))
    while not host.calls:
        await asyncio.sleep(0.01)
    # Half a second later, so that `release` has that much wall-clock time left when
    # `wait` finally gives up its slot.
    await asyncio.sleep(0.5)
    releasing = asyncio.ensure_future(capped.json("release.js"))
    await asyncio.sleep(0.3)
    assert not releasing.done() and [call[0] for call in host.calls] == ["wait"]
    assert (await waiting).status == 503
    assert await releasing == "done"


def test_round_robin_across_apps() -> None:
    """Pure scheduler: a flood from one app does not push another app's job back."""
    from tests.js_bridge.scheduler_jobs import job_for

    scheduler = FairScheduler(max_running_per_app=2, max_queued_per_app=100)
    flood = [job_for("alpha") for _ in range(50)]
    other = job_for("beta")
    refused, _ = scheduler.submit([*flood, other])
    assert refused == []
    taken = [scheduler.take(0) for _ in range(3)]
    assert [job.app_key for job in taken if job] == ["alpha", "beta", "alpha"]
    assert scheduler.take(0) is None  # alpha is at its cap of 2, beta has nothing left
    scheduler.finished(taken[0])  # type: ignore[arg-type]
    assert scheduler.take(0) is flood[2]
