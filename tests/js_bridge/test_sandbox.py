"""The sandbox: no way out, limits that recover, an IOLoop that never stalls."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import time
from pathlib import Path

import pytest

from fazt.js_bridge import JsEngine
from tests.js_bridge.conftest import MEMORY_LIMIT_MB, TIME_LIMIT, HostRecorder, JsHarness

pytestmark = pytest.mark.gen_test(timeout=20)

TIME_ERROR = {"error": f"handler exceeded its CPU time limit ({TIME_LIMIT:g} s)"}
MEMORY_ERROR = {"error": f"handler exceeded its memory limit ({MEMORY_LIMIT_MB} MB)"}


async def test_no_host_capabilities_in_the_global_scope(js: JsHarness) -> None:
    js.write(
        "probe.js",
        "module.exports = () => ({ json: {\n"
        "  globals: ['require', 'module', 'exports', 'process', 'std', 'os', 'print',\n"
        "            'scriptArgs', 'setTimeout', 'setInterval', 'fetch', 'XMLHttpRequest',\n"
        "            'WebSocket', 'Deno', 'Bun', 'python', 'pyodide']\n"
        "    .filter((name) => typeof globalThis[name] !== 'undefined'),\n"
        "  own: Object.getOwnPropertyNames(globalThis)\n"
        "    .filter((name) => /fazt|py|__|std|^os$/i.test(name)),\n"
        "  sameGlobal: Function('return this')() === globalThis,\n"
        "  indirectEval: (0, eval)('typeof require'),\n"
        "} });",
    )
    assert await js.json("probe.js") == {
        "globals": [],
        "own": ["fazt"],
        "sameGlobal": True,
        "indirectEval": "undefined",
    }


async def test_dynamic_import_cannot_load_anything(js: JsHarness, tmp_path: object) -> None:
    (js.api() / "other.js").write_text("globalThis.loaded = true; export default 1;")
    js.write(
        "imp.js",
        "module.exports = async () => {\n"
        "  const out = [];\n"
        "  for (const name of ['os', 'std', 'qjs:os', 'fs', '/etc/passwd', './other.js']) {\n"
        "    try { await import(name); out.push(name + ': loaded'); }\n"
        "    catch (e) { out.push(name + ': ' + e.name); }\n"
        "  }\n"
        "  return { json: { out, loaded: typeof globalThis.loaded } };\n"
        "};",
    )
    result = await js.json("imp.js")
    assert result["loaded"] == "undefined"
    assert all(line.endswith(": ReferenceError") for line in result["out"]), result


async def test_static_import_is_a_syntax_error(js: JsHarness) -> None:
    js.write("static.js", "import * as os from 'os';\nmodule.exports = () => 1;")
    response = await js.run("static.js")
    assert response.status == 500
    assert "SyntaxError" in json.loads(response.body)["error"]


async def test_atomics_cannot_block_the_worker(js: JsHarness) -> None:
    js.write(
        "block.js",
        "module.exports = () => {\n"
        "  try { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000); }\n"
        "  catch (e) { return e.message; }\n"
        "};",
    )
    assert "cannot block" in await js.json("block.js")


async def test_bridge_internals_are_unreachable_and_fazt_is_read_only(js: JsHarness) -> None:
    js.write(
        "tamper.js",
        "module.exports = () => {\n"
        "  const before = fazt.app.slug;\n"
        "  try { fazt.app.slug = 'beta'; } catch (e) {}\n"
        "  try { fazt.test.echo = () => 'fake'; } catch (e) {}\n"
        "  try { globalThis.fazt = {}; } catch (e) {}\n"
        "  return { json: { slug: fazt.app.slug, before, echoIsFake: fazt.test.echo() === 'fake',\n"
        "    internals: typeof __fazt_run + typeof __fazt_settle + typeof __fazt_poll } };\n"
        "};",
    )
    assert await js.json("tamper.js") == {
        "slug": "alpha",
        "before": "alpha",
        "echoIsFake": False,
        "internals": "undefinedundefinedundefined",
    }


async def test_prototype_pollution_and_globals_stay_inside_one_app(js: JsHarness) -> None:
    js.write(
        "pollute.js",
        "module.exports = () => {\n"
        "  Object.prototype.polluted = 'yes';\n"
        "  Array.prototype.includes = () => true;\n"
        "  globalThis.secret = 'alpha-only';\n"
        "  JSON.stringify = () => 'hijacked';\n"
        "  return 'done';\n"
        "};",
    )
    probe = (
        "module.exports = () => ({ json: { polluted: ({}).polluted === undefined,"
        " includes: [1].includes(2), secret: typeof secret } });"
    )
    js.write("probe.js", probe, app="beta")
    for _ in range(4):  # both workers' contexts for alpha get polluted
        assert (await js.run("pollute.js")).status == 200
    assert await js.json("probe.js", app="beta") == {
        "polluted": True,
        "includes": False,
        "secret": "undefined",
    }


async def test_two_apps_never_share_module_state(js1: JsHarness) -> None:
    source = "let n = 0; module.exports = () => ++n;"
    js1.write("count.js", source)
    js1.write("count.js", source, app="beta")
    assert [await js1.json("count.js") for _ in range(3)] == [1, 2, 3]
    assert await js1.json("count.js", app="beta") == 1


async def test_infinite_loop_is_503_then_the_next_request_works(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write("loop.js", "globalThis.warm = 1; module.exports = () => { while (true) {} };")
    js.write("ok.js", "module.exports = () => 'fine';")
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        response = await js.run("loop.js")
    assert response.status == 503
    assert json.loads(response.body) == TIME_ERROR
    assert any("CPU time limit" in r.getMessage() for r in caplog.records)
    assert await js.json("ok.js") == "fine"


async def test_the_interrupt_cannot_be_caught(js: JsHarness) -> None:
    js.write(
        "catch.js",
        "module.exports = async () => { try { for (;;) {} } catch (e) { return 'swallowed'; } };",
    )
    response = await js.run("catch.js")
    assert (response.status, json.loads(response.body)) == (503, TIME_ERROR)


async def test_budget_covers_the_whole_request_not_one_slice(js: JsHarness) -> None:
    # Every slice stays well under the limit; together they exceed it.
    js.write(
        "slices.js",
        "module.exports = async () => {\n"
        "  for (;;) {\n"
        "    await fazt.test.echo();\n"
        "    const until = Date.now() + 60;\n"
        "    while (Date.now() < until) {}\n"
        "  }\n"
        "};",
    )
    response = await js.run("slices.js")
    assert (response.status, json.loads(response.body)) == (503, TIME_ERROR)


async def test_loop_after_await_is_stopped(js: JsHarness) -> None:
    js.write("late.js", "module.exports = async () => { await fazt.test.echo(); for (;;) {} };")
    assert (await js.run("late.js")).status == 503


async def test_ioloop_and_other_requests_keep_flowing_during_a_loop(js: JsHarness) -> None:
    js.write("loop.js", "module.exports = () => { for (;;) {} };")
    js.write("quick.js", "module.exports = async () => (await fazt.test.echo(1)).args;", app="beta")
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    looping = asyncio.ensure_future(js.run("loop.js"))
    finished: list[float] = []
    looping.add_done_callback(lambda _: finished.append(time.monotonic()))
    await asyncio.sleep(0.02)
    # The other worker and the IOLoop serve other requests meanwhile.
    quick = [await js.json("quick.js", app="beta") for _ in range(3)]
    quick_done = time.monotonic()
    response = await looping
    tick_task.cancel()
    assert quick == [[1]] * 3
    assert quick_done < finished[0]
    assert response.status == 503
    # A stalled IOLoop would show one gap as long as the loop ran.
    during = [t for t in ticks if started <= t <= finished[0]]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) >= 5
    assert max(gaps) < (finished[0] - started) / 2


async def test_memory_bomb_is_500_then_the_next_request_works(js: JsHarness) -> None:
    js.write(
        "bomb.js",
        "module.exports = () => { globalThis.keep = [];"
        " for (let i = 0; ; i++) keep.push('x'.repeat(100000) + i); };",
    )
    js.write("ok.js", "module.exports = () => typeof keep;")
    for _ in range(2):
        response = await js.run("bomb.js")
        assert (response.status, json.loads(response.body)) == (500, MEMORY_ERROR)
        assert await js.json("ok.js") == "undefined"  # a fresh context


@pytest.mark.parametrize("kind", ["", "async "])
@pytest.mark.parametrize("size", [37, 1000, 4096, 100000])
async def test_memory_bomb_held_by_a_global_never_reaches_the_next_request(
    tmp_path: Path, host: HostRecorder, kind: str, size: int
) -> None:
    # One worker, so the next request would meet the same context if it were kept; no
    # namespaces, a layout where small objects used to leave no memory to report the
    # error ("never settled").
    engine = JsEngine(time_limit_seconds=TIME_LIMIT, memory_limit_mb=16, threads=1)
    js1 = JsHarness(engine, tmp_path, host)
    js1.write(
        "bomb.js",
        f"module.exports = {kind}() => {{ globalThis.keep = [];"
        f" for (let i = 0; ; i++) keep.push({{ a: 'x'.repeat({size}) + i }}); }};",
    )
    js1.write("ok.js", "module.exports = async () => ({ json: typeof keep });")
    try:
        for _ in range(3):
            response = await js1.run("bomb.js")
            assert (response.status, json.loads(response.body)) == (500, MEMORY_ERROR)
            assert await js1.json("ok.js") == "undefined"
    finally:
        engine.close()


async def test_memory_bomb_in_a_caught_allocation(js: JsHarness) -> None:
    js.write(
        "big.js",
        "module.exports = () => { try { return new Array(1e9).fill(0).length; }"
        " catch (e) { throw e; } };",
    )
    response = await js.run("big.js")
    assert response.status == 500
    assert json.loads(response.body) in (MEMORY_ERROR, {"error": "Invalid array length"})


async def test_deep_recursion_is_a_clear_500(js: JsHarness) -> None:
    js.write("deep.js", "function f(n) { return f(n + 1) + 1; }\nmodule.exports = () => f(0);")
    js.write(
        "ok.js", "function f(n) { return n ? 1 + f(n - 1) : 0; }\nmodule.exports = () => f(500);"
    )
    response = await js.run("deep.js")
    assert (response.status, json.loads(response.body)) == (
        500,
        {"error": "Maximum call stack size exceeded"},
    )
    assert await js.json("ok.js") == 500


async def test_nested_response_serialises(js: JsHarness) -> None:
    # (Nesting deep enough to overflow JSON.stringify costs seconds of CPU in QuickJS,
    # so it ends as a 503 or a 500 depending on load; a stack overflow is tested above.)
    js.write(
        "nest.js",
        "module.exports = () => { let v = []; for (let i = 0; i < 1000; i++) v = [v]; return v; };",
    )
    response = await js.run("nest.js")
    assert response.status == 200
    assert response.body == b"[" * 1001 + b"]" * 1001


async def test_local_memory_bomb_that_throws_null_is_a_memory_error(js: JsHarness) -> None:
    # Past the limit QuickJS may throw null (it cannot allocate the error object).
    js.write(
        "nest.js",
        "module.exports = () => { let v = []; for (let i = 0; i < 1e7; i++) v = [v]; return 1; };",
    )
    response = await js.run("nest.js")
    assert (response.status, json.loads(response.body)) == (500, MEMORY_ERROR)


async def test_many_concurrent_requests_across_threads_and_apps(js: JsHarness) -> None:
    for app in ("alpha", "beta"):
        js.write(
            "work.js",
            "module.exports = async (req) => {\n"
            "  let s = 0; for (let i = 0; i < 20000; i++) s += i;\n"
            "  const echoed = await fazt.test.echo(req.query.i);\n"
            "  return { json: { app: fazt.app.slug, i: echoed.args[0], s } };\n"
            "};",
            app=app,
        )

    async def one(i: int) -> None:
        app = "alpha" if i % 2 else "beta"
        request = {
            "method": "GET",
            "path": "/api/work",
            "query": {"i": str(i)},
            "headers": {},
            "body": "",
            "json": None,
            "user": None,
            "app": {"slug": app, "uuid": f"app_{app}"},
        }
        assert await js.json("work.js", app=app, request=request) == {
            "app": app,
            "i": str(i),
            "s": sum(range(20000)),
        }

    await asyncio.gather(*(one(i) for i in range(200)))


async def test_a_handler_that_breaks_the_bridge_only_breaks_its_own_context(
    js1: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # Settling destructures arrays; sabotage that, then await a host call.
    js1.write(
        "sabotage.js",
        "module.exports = async () => {\n"
        "  Array.prototype[Symbol.iterator] = function () { throw new Error('sabotaged'); };\n"
        "  await fazt.test.echo(1);\n"
        "  return 'unreachable?';\n"
        "};",
    )
    js1.write("ok.js", "module.exports = async () => (await fazt.test.echo('fine')).args;")
    with caplog.at_level(logging.ERROR):
        response = await js1.run("sabotage.js")
    assert response.status == 500
    assert "sabotaged" in json.loads(response.body)["error"]
    gc.collect()  # on the IOLoop thread: must find no context to free here
    assert await js1.json("ok.js") == ["fine"]
