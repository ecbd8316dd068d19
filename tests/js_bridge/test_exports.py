"""Calling one named export of a module (``JsEngine.call_export``), as realtime hooks do.

Same workers, scheduler and limits as handlers; what the function returns comes
back JSON-decoded, ``undefined`` apart from ``null``; a missing function, a
throw and a limit each have their own outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from fazt.contracts.host_calls import HostCallContext
from fazt.contracts.js_engine import ExportResult
from fazt.js_bridge import JsEngine
from fazt.js_bridge.engine import DEADLINE_GRACE_SECONDS
from tests.js_bridge.conftest import HostRecorder, JsHarness

pytestmark = pytest.mark.gen_test(timeout=20)

MODULE = "_realtime.js"


async def call(
    js: JsHarness,
    name: str,
    argument: dict[str, Any] | None = None,
    *,
    module: str = MODULE,
    wall: float | None = None,
    app: str = "alpha",
) -> ExportResult:
    return await js.engine.call_export(
        HostCallContext(app=js.apps[app]),
        js.api(app) / module,
        js.api(app),
        name,
        argument or {},
        wall_time_limit_seconds=wall,
    )


async def test_values_come_back_json_decoded_and_undefined_apart_from_null(
    js: JsHarness,
) -> None:
    js.write(
        MODULE,
        "exports.echo = (arg) => arg;\n"
        "exports.later = async (arg) => ({ data: arg.text.toUpperCase() });\n"
        "exports.nothing = () => {};\n"
        "exports.nil = async () => null;\n"
        "exports.no = () => false;\n"
        "exports.self = function () { return this === module.exports; };\n",
    )
    argument = {"channel": "room-ü", "user": {"id": "a", "tags": [1, 2.5, None, True]}}
    assert await call(js, "echo", argument) == ExportResult("returned", argument)
    assert await call(js, "later", {"text": "hi ☃"}) == ExportResult("returned", {"data": "HI ☃"})
    assert await call(js, "nothing") == ExportResult("returned", undefined=True)
    assert await call(js, "nil") == ExportResult("returned", None)
    assert await call(js, "no") == ExportResult("returned", False)
    assert await call(js, "self") == ExportResult("returned", True)


async def test_an_export_may_await_host_calls_and_require(
    js: JsHarness, host: HostRecorder
) -> None:
    js.write("_lib/shout.js", "module.exports = (s) => s + '!';")
    js.write(
        MODULE,
        "const shout = require('./_lib/shout.js');\n"
        "exports.onJoin = async ({ member }) => shout((await fazt.test.echo(member.id)).args[0]);",
    )
    result = await call(js, "onJoin", {"channel": "presence-x", "member": {"id": "ann"}})
    assert result == ExportResult("returned", "ann!")
    assert host.calls == [("echo", "alpha", ["ann"])]


async def test_a_missing_function_or_module_is_missing(js: JsHarness) -> None:
    js.write(MODULE, "exports.onSubscribe = () => true; exports.notAFunction = 3;")
    missing = await call(js, "onPublish")
    assert missing == ExportResult(
        "missing", error="api/_realtime.js does not export a function onPublish"
    )
    assert (await call(js, "notAFunction")).outcome == "missing"
    # Inherited properties are not exports.
    assert (await call(js, "toString")).outcome == "missing"
    assert (await call(js, "constructor")).outcome == "missing"
    no_module = await call(js, "onSubscribe", module="_nothing_here.js")
    assert no_module == ExportResult("missing", error="no module api/_nothing_here.js")


async def test_throws_and_rejections_fail_and_are_logged_with_the_function(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        MODULE,
        "exports.onPublish = () => { throw new TypeError('no shouting'); };\n"
        "exports.onSubscribe = async () => { throw new Error('denied by a throw'); };\n"
        "exports.onJoin = () => Promise.reject('a bare string');\n",
    )
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        thrown = await call(js, "onPublish")
        rejected = await call(js, "onSubscribe")
        bare = await call(js, "onJoin")
    assert thrown == ExportResult("failed", error="no shouting")
    assert rejected == ExportResult("failed", error="denied by a throw")
    assert bare == ExportResult("failed", error="a bare string")
    lines = [record.getMessage() for record in caplog.records]
    assert any(
        line.startswith("api/_realtime.js onPublish threw TypeError: no shouting") for line in lines
    ), lines
    assert any(line.startswith("api/_realtime.js onSubscribe threw Error") for line in lines)


async def test_a_call_over_its_wall_limit_is_interrupted_and_the_next_one_works(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        MODULE,
        "exports.spin = () => { for (;;) {} };\n"
        "exports.ok = () => 'fine';\n"
        "exports.nap = async () => { await fazt.test.nap(5); return 'woke'; };\n",
    )
    wall = 0.2
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        started = time.monotonic()
        spun = await call(js, "spin", wall=wall)
        took = time.monotonic() - started
        napped = await call(js, "nap", wall=wall)
    assert spun == ExportResult(
        "failed", error="handler exceeded its wall-clock time limit (0.2 s)"
    )
    assert napped.outcome == "failed"
    # The caller has its answer by the deadline (plus the engine's grace at worst).
    assert took < wall + DEADLINE_GRACE_SECONDS + 1.0
    assert await call(js, "ok") == ExportResult("returned", "fine")
    # The worker stopped the JS itself (it is interrupted, not left running).
    for _ in range(500):
        if any("spin exceeded its" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    assert any(
        "api/_realtime.js spin exceeded its wall-clock time limit (0.2 s" in r.getMessage()
        for r in caplog.records
    )


async def test_module_functions_lists_the_exported_functions(js: JsHarness) -> None:
    js.write(
        MODULE,
        "module.exports = { onVacated() {}, onJoin: async () => {}, limit: 5, onLeave: null };",
    )
    listed = await js.engine.module_functions(
        HostCallContext(app=js.apps["alpha"]), js.api() / MODULE, js.api()
    )
    assert listed == ExportResult("returned", ["onJoin", "onVacated"])
    js.write("fn.js", "module.exports = () => 1;")
    listed = await js.engine.module_functions(
        HostCallContext(app=js.apps["alpha"]), js.api() / "fn.js", js.api()
    )
    assert listed == ExportResult("returned", [])


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("exports.onJoin = (;", "SyntaxError"),
        ("throw new Error('not today');", "not today"),
        ("require('./_lib/absent.js');", "no such module"),
    ],
)
async def test_a_module_that_fails_to_load_fails(
    js: JsHarness, source: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(MODULE, source)
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        listed = await js.engine.module_functions(
            HostCallContext(app=js.apps["alpha"]), js.api() / MODULE, js.api()
        )
        called = await call(js, "onJoin")
    assert listed.outcome == "failed" and error in listed.error, listed
    assert called.outcome == "failed" and error in called.error, called


async def test_export_calls_count_against_the_apps_queue(tmp_path: Path) -> None:
    engine = JsEngine(threads=1, max_concurrent_per_app=1, max_queued_per_app=1)
    try:
        js = JsHarness(engine, tmp_path, HostRecorder())
        js.write(MODULE, "exports.ok = () => 'fine';")
        # Handed over in one loop iteration: the app's queue holds one, the next is refused.
        first, second = await asyncio.gather(call(js, "ok"), call(js, "ok"))
        assert first == ExportResult("returned", "fine")
        assert second.outcome == "failed"
        assert second.error.startswith("too many requests are waiting")
        # Another app is not affected.
        js.write(MODULE, "exports.ok = () => 'beta';", app="beta")
        assert await call(js, "ok", app="beta") == ExportResult("returned", "beta")
    finally:
        engine.close()


async def test_a_closed_engine_fails_calls(js: JsHarness) -> None:
    js.write(MODULE, "exports.ok = () => 'fine';")
    js.engine.close()
    result = await call(js, "ok")
    assert result == ExportResult("failed", error="the JS engine is shut down")


async def test_a_wall_limited_call_stopped_early_by_other_threads_cpu_is_a_wall_limit(
    js: JsHarness,
) -> None:
    """The interrupt counts the process's CPU time: with another thread busy it fires
    before the wall-clock deadline, and it is still the wall-clock limit (the one the
    slice was armed with) that stopped the call, not the CPU budget."""
    import hashlib
    import threading

    js.write(MODULE, "exports.spin = () => { for (;;) {} };\n")
    stop = threading.Event()

    def burn() -> None:
        block = b"x" * (1 << 20)
        while not stop.is_set():
            hashlib.sha256(block).digest()  # releases the GIL: CPU in parallel

    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    try:
        spun = await call(js, "spin", wall=0.4)
    finally:
        stop.set()
        burner.join()
    assert spun == ExportResult(
        "failed", error="handler exceeded its wall-clock time limit (0.4 s)"
    )
