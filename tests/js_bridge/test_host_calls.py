"""Host APIs as Promises: the outbox, settling, argument checks, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

import fazt.js_bridge.host_calls as host_calls_module
from fazt.js_bridge import JsEngine
from tests.js_bridge.conftest import HostRecorder, JsHarness

pytestmark = pytest.mark.gen_test(timeout=10)


async def test_host_call_resolves_with_the_result(js: JsHarness, host: HostRecorder) -> None:
    js.write(
        "call.js",
        "module.exports = async () =>"
        " ({ json: await fazt.test.echo('x', { n: 1 }, [true, null]) });",
    )
    assert await js.json("call.js") == {"app": "alpha", "args": ["x", {"n": 1}, [True, None]]}
    assert host.calls == [("echo", "alpha", ["x", {"n": 1}, [True, None]])]


async def test_host_functions_run_on_the_ioloop_thread(js: JsHarness, host: HostRecorder) -> None:
    js.write(
        "call.js",
        "module.exports = async () => { await fazt.test.echo(); await fazt.test.echo(); };",
    )
    assert (await js.run("call.js")).status == 204
    assert host.threads == {threading.get_ident()}


async def test_host_call_error_rejects_with_its_message(js: JsHarness) -> None:
    js.write(
        "fail.js",
        "module.exports = async () => {\n"
        "  try { await fazt.test.fail('channel must be a string'); }\n"
        "  catch (e) { return { json: { caught: e.message, isError: e instanceof Error } }; }\n"
        "};",
    )
    assert await js.json("fail.js") == {
        "caught": "fazt.test.fail: channel must be a string",
        "isError": True,
    }


async def test_uncaught_host_rejection_is_a_500(js: JsHarness) -> None:
    js.write("fail.js", "module.exports = async () => { await fazt.test.fail('no'); };")
    response = await js.run("fail.js")
    assert response.status == 500
    assert json.loads(response.body) == {"error": "fazt.test.fail: no"}


async def test_python_exception_is_internal_error_in_js_with_traceback_only_in_python(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        "crash.js",
        "module.exports = async () => {\n"
        "  try { await fazt.test.crash(); } catch (e) { return e.message; }\n"
        "};",
    )
    with caplog.at_level(logging.ERROR, logger="fazt.js_bridge"):
        assert await js.json("crash.js") == "fazt.test.crash: internal error"
    (record,) = [r for r in caplog.records if r.name == "fazt.js_bridge"]
    assert record.exc_info is not None and "secret python detail" in str(record.exc_info[1])
    assert "fazt.test.crash" in record.getMessage()


async def test_non_json_result_is_internal_error(js: JsHarness) -> None:
    js.write(
        "bad.js",
        "module.exports = async () => {"
        " try { await fazt.test.unjsonable(); } catch (e) { return e.message; } };",
    )
    assert await js.json("bad.js") == "fazt.test.unjsonable: internal error"


@pytest.mark.parametrize(
    ("args", "position", "why"),
    [
        ("'ok', () => 1", 2, "a function at argument 2"),
        ("10n", 1, "a BigInt at argument 1"),
        ("'a', undefined", 2, "undefined at argument 2"),
        ("(() => { const o = {}; o.self = o; return o; })()", 1, "a cycle at argument 1.self"),
        ("{ deep: [1, { f: function () {} }] }", 1, "a function at argument 1.deep[1].f"),
        ("NaN", 1, "a non-finite number at argument 1"),
        ("Symbol('s')", 1, "a symbol at argument 1"),
        ("{ 'a b': Infinity }", 1, 'a non-finite number at argument 1["a b"]'),
        # A key the message would carry raw (a lone surrogate) is quoted and escaped,
        # so the message itself stays strict JSON.
        ("{ '\\ud800': Infinity }", 1, 'a non-finite number at argument 1["\\ud800"]'),
    ],
)
async def test_non_serialisable_arguments_reject_naming_function_and_argument(
    js: JsHarness, host: HostRecorder, args: str, position: int, why: str
) -> None:
    js.write(
        "args.js",
        "module.exports = async () => {\n"
        f"  try {{ await fazt.test.echo({args}); return 'resolved?'; }}\n"
        "  catch (e) { return [e.name, e.message]; }\n"
        "};",
    )
    name, message = await js.json("args.js")
    assert name == "TypeError"
    assert message == (f"fazt.test.echo: argument {position} is not JSON-serialisable ({why})")
    assert host.calls == []  # nothing reached Python


async def test_dates_and_class_instances_cross_as_json(js: JsHarness) -> None:
    js.write(
        "date.js",
        "class P { constructor() { this.x = 1; } }\n"
        "module.exports = async () => (await fazt.test.echo(new Date(0), new P())).args;",
    )
    assert await js.json("date.js") == ["1970-01-01T00:00:00.000Z", {"x": 1}]


async def test_unknown_functions_do_not_exist(js: JsHarness) -> None:
    js.write(
        "probe.js",
        "module.exports = () => ({ json: {\n"
        "  nope: typeof fazt.test.nope, ns: typeof fazt.nothing,\n"
        "  names: Object.keys(fazt.test).sort(), top: Object.keys(fazt).sort(),\n"
        "  frozen: Object.isFrozen(fazt) && Object.isFrozen(fazt.test),\n"
        "} });",
    )
    assert await js.json("probe.js") == {
        "nope": "undefined",
        "ns": "undefined",
        "names": ["crash", "echo", "fail", "nap", "release", "unjsonable", "wait"],
        "top": ["app", "log", "test"],
        "frozen": True,
    }


async def test_calls_made_together_run_concurrently(js: JsHarness) -> None:
    # `wait` resolves only after `release` ran: serial execution would time out.
    js.write(
        "both.js",
        "module.exports = async () =>"
        " ({ json: await Promise.all([fazt.test.wait(), fazt.test.release()]) });",
    )
    assert await js.json("both.js") == ["released", "done"]


async def test_many_sequential_awaits(js: JsHarness, host: HostRecorder) -> None:
    js.write(
        "loop.js",
        "module.exports = async () => {\n"
        "  let total = 0;\n"
        "  for (let i = 0; i < 50; i++) total += (await fazt.test.echo(i)).args[0];\n"
        "  return total;\n"
        "};",
    )
    assert await js.json("loop.js") == sum(range(50))
    assert len(host.calls) == 50


async def test_fire_and_forget_call_still_runs(js: JsHarness, host: HostRecorder) -> None:
    js.write("forget.js", "module.exports = () => { fazt.test.echo('bg'); return 'sent'; };")
    assert await js.json("forget.js") == "sent"
    assert host.calls == [("echo", "alpha", ["bg"])]


async def test_host_context_names_the_calling_app(js: JsHarness, host: HostRecorder) -> None:
    for app in ("alpha", "beta"):
        js.write("who.js", "module.exports = async () => (await fazt.test.echo()).app;", app=app)
        assert await js.json("who.js", app=app) == app
    assert [slug for _, slug, _ in host.calls] == ["alpha", "beta"]


async def test_namespace_validation(js: JsHarness) -> None:
    async def fn(ctx: object, args: list[object]) -> None:
        return None

    for bad in ("app", "log", "test", "bad-name", ""):
        with pytest.raises(ValueError):
            js.engine.register_namespace(bad, {"f": fn})
    with pytest.raises(ValueError):
        js.engine.register_namespace("good", {"bad name": fn})


async def test_namespace_registered_later_reaches_warm_contexts(js1: JsHarness) -> None:
    js1.write("probe.js", "module.exports = () => typeof fazt.late;")
    assert await js1.json("probe.js") == "undefined"

    async def ping(ctx: object, args: list[object]) -> str:
        return "pong"

    js1.engine.register_namespace("late", {"ping": ping})
    js1.write("ping.js", "module.exports = () => fazt.late.ping();")
    assert await js1.json("ping.js") == "pong"


async def test_a_host_call_that_hangs_times_out(
    js: JsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_calls_module, "HOST_CALL_TIMEOUT_SECONDS", 0.3)
    js.write(
        "hang.js",
        "module.exports = async () => {"
        " try { await fazt.test.wait(); } catch (e) { return e.message; } };",
    )
    # `wait` blocks until `release`, which nobody calls (its own 2 s timeout is longer).
    assert await js.json("hang.js") == "fazt.test.wait: timed out after 0.3 s"


async def test_close_while_a_handler_waits_rejects_its_host_calls(
    js: JsHarness, host: HostRecorder
) -> None:
    js.write("hang.js", "module.exports = async () => { await fazt.test.wait(); };")
    pending = asyncio.ensure_future(js.run("hang.js"))
    while not host.calls:
        await asyncio.sleep(0.01)
    js.engine.close()
    response = await pending
    assert response.status == 500
    assert json.loads(response.body) == {"error": "fazt.test.wait: the server is shutting down"}
    after = await js.run("hang.js")
    assert (after.status, json.loads(after.body)) == (503, {"error": "the JS engine is shut down"})


async def test_large_host_payloads_and_logs_cross_intact(js: JsHarness) -> None:
    # Long strings built with + are ropes inside QuickJS; the bridge must flatten them.
    js.write(
        "big.js",
        "module.exports = async () => {\n"
        "  let s = ''; for (let i = 0; i < 20000; i++) s += 'ab';\n"
        "  console.log(s.slice(0, 10) + s.slice(10));\n"
        "  const echoed = await fazt.test.echo(s + '!');\n"
        "  return { body: echoed.args[0] + s };\n"
        "};",
    )
    response = await js.run("big.js")
    assert response.status == 200
    assert response.body == b"ab" * 20000 + b"!" + b"ab" * 20000


async def test_waiting_for_host_calls_is_not_charged_to_the_cpu_budget(js: JsHarness) -> None:
    # The budget is 0.5 s of CPU; waiting 0.8 s for the IOLoop costs none.
    js.write(
        "nap.js",
        "module.exports = async () => [await fazt.test.nap(0.4), await fazt.test.nap(0.4)];",
    )
    response = await js.run("nap.js")
    assert (response.status, json.loads(response.body)) == (200, ["rested", "rested"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_limit_seconds": 0},
        {"time_limit_seconds": -1},
        {"memory_limit_mb": 0},
        {"memory_limit_mb": 1.5},
        {"threads": 0},
        {"threads": True},
    ],
)
async def test_engine_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        JsEngine(**kwargs)  # type: ignore[arg-type]


async def test_a_worker_waiting_on_host_calls_does_not_hold_up_other_requests(
    js1: JsHarness, host: HostRecorder
) -> None:
    # One configured worker. alpha's `hold` waits for a host call that only beta's
    # `free` resolves; a spare worker must serve `free` meanwhile, or `hold` times out.
    js1.write("hold.js", "module.exports = async () => await fazt.test.wait();")
    js1.write("free.js", "module.exports = async () => await fazt.test.release();", app="beta")
    holding = asyncio.ensure_future(js1.json("hold.js"))
    while not host.calls:
        await asyncio.sleep(0.01)
    assert await js1.json("free.js", app="beta") == "done"
    assert await holding == "released"
    assert any(worker.name.endswith("-spare") for worker in js1.engine._pool._workers)


async def test_a_host_call_that_never_waits_runs_without_a_task_one_that_waits_in_one(
    js: JsHarness,
) -> None:
    """Calls start at once on the loop (no task, no extra loop turn) unless they wait."""

    async def in_task(context: object, args: list[object]) -> bool:
        if args and args[0] == "wait":
            await asyncio.sleep(0)
        return asyncio.current_task() is not None

    js.engine.register_namespace("probe", {"inTask": in_task})
    js.write(
        "probe.js",
        "module.exports = async () => ({ json: await Promise.all(["
        "fazt.probe.inTask(), fazt.probe.inTask('wait'), fazt.probe.inTask()]) });",
    )
    assert await js.json("probe.js") == [False, True, False]


async def test_a_host_call_cancelled_before_it_waits_rejects_and_the_others_go_on(
    js: JsHarness,
) -> None:
    async def cancelled(context: object, args: list[object]) -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future  # raises at once, without waiting

    async def fine(context: object, args: list[object]) -> str:
        return "fine"

    js.engine.register_namespace("probe", {"cancelled": cancelled, "fine": fine})
    js.write(
        "probe.js",
        "module.exports = async () => ({ json: (await Promise.allSettled(["
        "fazt.probe.cancelled(), fazt.probe.fine()]))"
        ".map((r) => r.status === 'fulfilled' ? r.value : String(r.reason.message)) });",
    )
    assert await js.json("probe.js") == ["fazt.probe.cancelled: cancelled", "fine"]
