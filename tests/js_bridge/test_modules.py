"""CommonJS: require inside api/ only, module cache, reload on edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fazt.js_bridge.modules import ModuleStore, candidate_keys, normalise_key
from tests.js_bridge.conftest import JsHarness

gen_test = pytest.mark.gen_test(timeout=10)


@gen_test
async def test_require_relative_nested_index_and_json(js: JsHarness) -> None:
    js.write("lib/math.js", "exports.double = (x) => x * 2;")
    js.write("lib/deeper/index.js", "module.exports = { name: require('../math').double(21) };")
    js.write("lib/data.json", '{"answer": 42}')
    js.write(
        "main.js",
        "const math = require('./lib/math.js');\n"
        "const deeper = require('./lib/deeper');\n"
        "const data = require('./lib/data.json');\n"
        "module.exports = () => ({ json: [math.double(2), deeper.name, data.answer] });",
    )
    assert await js.json("main.js") == [4, 42, 42]


@gen_test
async def test_nested_handler_requires_from_its_own_folder(js: JsHarness) -> None:
    js.write("shared.js", "module.exports = 'shared';")
    js.write("admin/helper.js", "module.exports = 'helper';")
    js.write(
        "admin/users.js",
        "module.exports = () => [require('./helper'), require('../shared')];",
    )
    assert await js.json("admin/users.js") == ["helper", "shared"]


@gen_test
async def test_module_cache_runs_a_module_once(js1: JsHarness) -> None:
    js1.write("counter.js", "let n = 0; module.exports = () => ++n;")
    js1.write(
        "main.js",
        "const a = require('./counter'); const b = require('./counter.js');\n"
        "module.exports = () => [a === b, a()];",
    )
    assert await js1.json("main.js") == [True, 1]
    assert await js1.json("main.js") == [True, 2]  # same warm context, module state kept


@gen_test
async def test_cyclic_requires_see_partial_exports(js: JsHarness) -> None:
    js.write("a.js", "exports.early = 'a'; const b = require('./b'); exports.fromB = b.value;")
    js.write("b.js", "const a = require('./a'); exports.value = 'b saw ' + a.early;")
    js.write("main.js", "module.exports = () => require('./a').fromB;")
    assert await js.json("main.js") == "b saw a"


@gen_test
async def test_module_that_throws_is_retried_next_time(js1: JsHarness) -> None:
    js1.write(
        "flaky.js",
        "globalThis.tries = (globalThis.tries || 0) + 1;\n"
        "if (tries < 3) throw new Error('try ' + tries);\n"
        "module.exports = 'loaded';",
    )
    js1.write(
        "main.js",
        "module.exports = () => {"
        " try { return require('./flaky'); } catch (e) { return e.message; } };",
    )
    assert await js1.json("main.js") == "try 1"
    assert await js1.json("main.js") == "try 2"
    assert await js1.json("main.js") == "loaded"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fs", "only relative paths inside the app's api/ folder"),
        ("child_process", "there are no built-in modules"),
        ("/etc/passwd", "only relative paths"),
        ("../app.json", "the path leaves the app's api/ folder"),
        ("./../../outside.js", "the path leaves the app's api/ folder"),
        ("./missing.js", "no such module in api/"),
    ],
)
@gen_test
async def test_require_escapes_are_refused(js: JsHarness, spec: str, message: str) -> None:
    (js.tmp_path / "outside.js").write_text("module.exports = 'LEAKED';")
    js.write(
        "escape.js",
        f"module.exports = () => {{ try {{ return require({json.dumps(spec)}); }}"
        " catch (e) { return 'refused: ' + e.message; } };",
    )
    result = await js.json("escape.js")
    assert result.startswith("refused: ") and message in result
    assert "LEAKED" not in result


@gen_test
async def test_symlink_out_of_api_is_refused(js: JsHarness) -> None:
    secret = js.tmp_path / "secret.js"
    secret.write_text("module.exports = 'LEAKED';")
    os.symlink(secret, js.api() / "link.js")
    os.symlink(js.tmp_path, js.api() / "dirlink")
    js.write(
        "escape.js",
        "const tryIt = (f) => {"
        " try { return f(); } catch (e) { return 'refused: ' + e.message; } };\n"
        "module.exports = () => [tryIt(() => require('./link.js')),"
        " tryIt(() => require('./dirlink/secret.js'))];",
    )
    results = await js.json("escape.js")
    for result in results:
        assert result.startswith("refused: ") and "outside the app's api/ folder" in result


@gen_test
async def test_symlinked_handler_pointing_outside_is_refused(js: JsHarness) -> None:
    secret = js.tmp_path / "secret.js"
    secret.write_text("module.exports = () => 'LEAKED';")
    os.symlink(secret, js.api() / "handler.js")
    response = await js.run("handler.js")
    assert response.status == 500
    assert b"LEAKED" not in response.body and b"outside" in response.body


@gen_test
async def test_dynamic_require_of_an_unloaded_file_explains_itself(js: JsHarness) -> None:
    js.write("hidden.js", "module.exports = 'hidden';")
    js.write(
        "dyn.js",
        "module.exports = () => { const name = './hid' + 'den'; "
        "try { return require(name); } catch (e) { return e.message; } };",
    )
    assert "only require calls with a literal relative path" in await js.json("dyn.js")


@gen_test
async def test_handler_is_reloaded_when_edited(js1: JsHarness) -> None:
    path = js1.write("v.js", "module.exports = () => 'one';")
    assert await js1.json("v.js") == "one"
    path.write_text("module.exports = () => 'two';")  # same size: mtime must do it
    js1.touch_later(path)
    assert await js1.json("v.js") == "two"
    path.write_text("module.exports = () => 'three, longer';")
    assert await js1.json("v.js") == "three, longer"


@gen_test
async def test_required_module_is_reloaded_and_dependents_rerun(js1: JsHarness) -> None:
    dep = js1.write("dep.js", "module.exports = 'old';")
    js1.write("main.js", "const dep = require('./dep'); module.exports = () => dep;")
    assert await js1.json("main.js") == "old"
    dep.write_text("module.exports = 'new value';")
    assert await js1.json("main.js") == "new value"


@gen_test
async def test_a_fixed_syntax_error_recovers(js1: JsHarness) -> None:
    path = js1.write("fix.js", "module.exports = () => {")
    assert (await js1.run("fix.js")).status == 500
    path.write_text("module.exports = () => 'fixed';")
    assert await js1.json("fix.js") == "fixed"


# -- pure resolution, mirrored by prelude.js ---------------------------------------


@pytest.mark.parametrize(
    ("base", "spec", "expected"),
    [
        ("", "./a.js", "a.js"),
        ("lib", "./a", "lib/a"),
        ("lib/x", "../y/./z.js", "lib/y/z.js"),
        ("", "../a.js", None),
        ("lib", "../../a.js", None),
        ("", ".//a.js", "a.js"),
    ],
)
def test_normalise_key(base: str, spec: str, expected: str | None) -> None:
    assert normalise_key(base, spec) == expected


def test_candidate_keys() -> None:
    assert candidate_keys("main.js", "./lib") == ["lib", "lib.js", "lib.json", "lib/index.js"]
    assert candidate_keys("a/main.js", "./x.json") == ["a/x.json"]
    assert candidate_keys("main.js", "fs") == []
    assert candidate_keys("main.js", "../x.js") == []
    assert candidate_keys("main.js", "/etc/passwd") == []


def test_store_reads_literal_requires_only_inside_root(tmp_path: Path) -> None:
    api = tmp_path / "api"
    api.mkdir()
    (api / "main.js").write_text(
        "require('./a'); require(\"./b.js\"); require('fs');"
        " require('../out.js'); // require('./c')"
    )
    (api / "a.js").write_text("")
    (api / "b.js").write_text("")
    (api / "c.js").write_text("")
    (tmp_path / "out.js").write_text("")
    store = ModuleStore()
    keys = sorted(m.key for m in store.closure(api, "main.js"))
    assert keys == ["a.js", "b.js", "c.js", "main.js"]  # comments are scanned too: harmless
    assert store.handler_key(api, api / "main.js") == "main.js"
    with pytest.raises(ValueError):
        store.handler_key(api, tmp_path / "out.js")


def test_store_rejects_oversized_and_non_utf8_files(tmp_path: Path) -> None:
    api = tmp_path / "api"
    api.mkdir()
    (api / "big.js").write_text("x" * 2000)
    (api / "latin.js").write_bytes(b"module.exports = '\xe9';")
    store = ModuleStore(max_module_bytes=1000)
    (big,) = store.closure(api, "big.js")
    (latin,) = store.closure(api, "latin.js")
    assert big.kind == "error" and "larger than 1000 bytes" in big.text
    assert latin.kind == "error" and "not valid UTF-8" in latin.text


def test_one_batch_stats_each_file_once_and_the_next_batch_sees_edits(tmp_path: Path) -> None:
    api = tmp_path / "api"
    api.mkdir()
    handler = api / "h.js"
    handler.write_text("module.exports = () => 1;\n")
    store = ModuleStore()
    first = store.closure(api, "h.js", batch=1)
    handler.write_text("module.exports = () => 2; // edited\n")
    st = handler.stat()
    os.utime(handler, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    # Requests that arrived together share what the first of them saw...
    assert store.closure(api, "h.js", batch=1)[0].text == first[0].text
    # ...and the next batch, or a call outside any batch, sees the edit.
    assert "edited" in store.closure(api, "h.js", batch=2)[0].text
    handler.write_text("module.exports = () => 3; // again\n")
    os.utime(handler, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert "again" in store.closure(api, "h.js")[0].text


@gen_test
async def test_an_edit_between_two_requests_is_picked_up(js: JsHarness) -> None:
    path = js.write("v.js", "module.exports = () => ({ json: 1 });")
    assert await js.json("v.js") == 1
    path.write_text("module.exports = () => ({ json: 2 });", encoding="utf-8")
    js.touch_later(path)
    assert await js.json("v.js") == 2
