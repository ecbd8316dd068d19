"""Stacks and syntax errors name ``api/<file>.js:line:col``, never ``<input>`` or the
bridge's own frames (the wrapper compiles everything as ``<input>``; see ModuleLines)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from fazt.js_bridge.modules import ModuleLines
from tests.js_bridge.conftest import JsHarness, make_request

pytestmark = pytest.mark.gen_test(timeout=10)

BRIDGE_FRAMES = re.compile(r"\bat (start|load|require|__fazt_run|call) ")


def app_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"]


def stack_lines(message: str) -> list[str]:
    """The stack of a logged error: one log line, its own lines escaped as ``\\n``."""
    assert "\n" not in message  # one error, one log line
    return message.partition(" | stack: ")[2].split("\\n")


async def test_stack_names_each_file_line_and_column(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        "_lib/deep.js",
        "// a library\n"
        "exports.explode = () => {\n"
        "  [1].map(() => { throw new TypeError('deep'); });\n"
        "};\n",
    )
    js.write(
        "boom.js",
        "const lib = require('./_lib/deep.js');\n"
        "function inner() {\n"
        "  lib.explode();\n"
        "}\n"
        "module.exports = async () => { inner(); };\n",
    )
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        response = await js.run("boom.js")
    assert response.status == 500 and json.loads(response.body) == {"error": "deep"}
    (message,) = app_errors(caplog)
    frames = [line.strip() for line in stack_lines(message)]
    assert frames == [
        "at <anonymous> (api/_lib/deep.js:3:29)",  # TypeError(...)
        "at map (native)",
        "at <anonymous> (api/_lib/deep.js:3:7)",
        "at inner (api/boom.js:3:7)",
        "at <anonymous> (api/boom.js:5:32)",
    ]
    assert "<input>" not in message and not BRIDGE_FRAMES.search(message)


async def test_an_error_while_a_module_loads(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write("_lib/top.js", "\n\nthrow new Error('at load');\n")
    js.write("top.js", "require('./_lib/top.js');\nmodule.exports = () => 1;\n")
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        assert await js.json("top.js") == {"error": "at load"}
    (message,) = app_errors(caplog)
    assert stack_lines(message) == [
        "    at <anonymous> (api/_lib/top.js:3:11)",
        "    at <anonymous> (api/top.js:1:1)",
    ]


@pytest.mark.parametrize(
    ("source", "location"),
    [
        ("module.exports = async (req) => {\n  return {json: 1 ;\n};\n", "api/syntax.js:2:19"),
        # Unclosed: the error is at the end of the file.
        ("module.exports = async (req) => {\n  return {json: 1};\n", "api/syntax.js:3:1"),
        ("module.exports = () => 1;\nconst = 5;", "api/syntax.js:2:7"),
    ],
)
async def test_syntax_errors_name_the_line_and_column(
    js: JsHarness, source: str, location: str
) -> None:
    js.write("syntax.js", source)
    error = (await js.json("syntax.js"))["error"]
    assert error.startswith(f"{location}: SyntaxError: "), error


async def test_locations_follow_edits_and_other_modules(
    js1: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """One context (one worker): modules compiled later, and an edit that adds lines."""
    js1.write("a.js", "module.exports = () => { throw new Error('a'); };\n")
    path = js1.write("b.js", "module.exports = () => {\n  throw new Error('b');\n};\n")
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        await js1.run("a.js")
        await js1.run("b.js")
        path.write_text("// grown\n// by two lines\n" + path.read_text())
        js1.touch_later(path)
        await js1.run("b.js")
        await js1.run("a.js")
    frames = [stack_lines(message)[0].strip() for message in app_errors(caplog)]
    # QuickJS points at the callee: the column of `Error` in `throw new Error(...)`.
    assert frames == [
        "at <anonymous> (api/a.js:1:36)",
        "at <anonymous> (api/b.js:2:13)",
        "at <anonymous> (api/b.js:4:13)",
        "at <anonymous> (api/a.js:1:36)",
    ]


async def test_a_logged_error_carries_its_file_locations(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        "logs.js",
        "module.exports = () => {\n"
        "  try { null.x; } catch (e) { console.error(e); }\n"
        "  return {json: 'ok'};\n"
        "};\n",
    )
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        assert await js.json("logs.js", request=make_request()) == "ok"
    (message,) = app_errors(caplog)
    assert message.startswith("TypeError: ")
    assert "at <anonymous> (api/logs.js:2:9)" in message and "<input>" not in message


def test_module_lines_place_and_locate() -> None:
    lines = ModuleLines(reserved=10)
    first = lines.wrap("a.js", "x\ny")
    assert first.startswith("\n" * 10 + "(function (module, exports, require) {\nx\ny\n})")
    assert lines.locate(12, 3) == ("a.js", 1, 3)
    assert lines.locate(13, 1) == ("a.js", 2, 1)
    assert lines.locate(14, 1) == ("a.js", 2, 2)  # the footer: the end of the file
    assert lines.locate(5, 1) is None  # the bridge
    lines.wrap("b.js", "z")
    assert lines.locate(16, 4) == ("b.js", 1, 4)
    lines.wrap("a.js", "x")  # fits its place: the same lines
    assert lines.locate(12, 1) == ("a.js", 1, 1)
    grown = lines.wrap("a.js", "1\n2\n3")  # does not fit: a new place after b.js
    assert grown.startswith("\n" * 17 + "(function")  # b.js took lines 15-17
    assert grown.count("\n") == 17 + 4
    assert lines.locate(19, 2) == ("a.js", 1, 2)
    assert lines.locate(12, 1) == ("a.js", 1, 1)  # the old place still names a.js
    assert lines.rewrite_stack("Error: x\n    at f (<input>:16:4)\n    at g (<input>:3:1)") == (
        "Error: x\n    at f (api/b.js:1:4)"
    )
