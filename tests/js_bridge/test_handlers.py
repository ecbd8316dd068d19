"""Handler model: req, response mapping, errors, logging (engine driven directly)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fazt.js_bridge import JsEngine
from tests.js_bridge.conftest import HostRecorder, JsHarness, make_request

pytestmark = pytest.mark.gen_test(timeout=10)


async def test_async_handler_json_response(js: JsHarness) -> None:
    js.write("hi.js", "module.exports = async (req) => ({ json: { hello: req.query.name } });")
    response = await js.run("hi.js", request=make_request(query={"name": "ada"}))
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.body) == {"hello": "ada"}


async def test_sync_handler(js: JsHarness) -> None:
    js.write("sync.js", "module.exports = (req) => ({ json: req.method + ' ok', status: 201 });")
    response = await js.run("sync.js")
    assert (response.status, json.loads(response.body)) == (201, "GET ok")


async def test_req_carries_everything_the_kernel_built(js: JsHarness) -> None:
    js.write("echo.js", "module.exports = (req) => ({ json: req });")
    request = make_request(
        method="POST",
        path="/api/echo",
        query={"a": "1"},
        headers={"content-type": "application/json"},
        user={"sub": "u1", "roles": ["admin"]},
    )
    got = await js.json("echo.js", request=request, body=b'{"x": [1, 2]}')
    assert got == {**request, "body": '{"x": [1, 2]}', "json": {"x": [1, 2]}}


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (b"", None),
        (b"  \n", None),
        (b"plain {", None),
        (b"[1, 2.5, null]", [1, 2.5, None]),
        (b'"text"', "text"),
        # Not JSON, though Python's parser would take it.
        (b'{"x": NaN}', None),
        (b"Infinity", None),
    ],
)
async def test_req_json_is_the_body_parsed_as_json_or_null(
    js: JsHarness, body: bytes, parsed: object
) -> None:
    js.write("echo.js", "module.exports = (req) => ({ json: [req.body, req.json] });")
    assert await js.json("echo.js", body=body) == [body.decode(), parsed]


async def test_body_response_is_text_with_custom_headers(js: JsHarness) -> None:
    js.write(
        "text.js",
        "module.exports = async () => ({ body: 'héllo', status: 202,"
        " headers: { 'X-Thing': 'yes', 'Cache-Control': 'no-store', 'X-Num': 5 } });",
    )
    response = await js.run("text.js")
    assert response.status == 202
    assert response.body == "héllo".encode()
    assert response.headers == {
        "X-Thing": "yes",
        "Cache-Control": "no-store",
        "X-Num": "5",
        "Content-Type": "text/plain; charset=utf-8",
    }


async def test_handler_content_type_wins(js: JsHarness) -> None:
    js.write(
        "html.js",
        "module.exports = () => ({ body: '<p>hi</p>', headers: { 'content-type': 'text/html' } });",
    )
    response = await js.run("html.js")
    assert response.headers == {"content-type": "text/html"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[1, 2, 3]", [1, 2, 3]),
        ("'just a string'", "just a string"),
        ("42", 42),
        ("null", None),
        ("{ status: 'ok', count: 2 }", {"status": "ok", "count": 2}),  # no json/body key
        ("{ json: undefined }", None),
    ],
)
async def test_other_values_are_sent_as_json(js: JsHarness, source: str, expected: object) -> None:
    js.write("value.js", f"module.exports = async () => ({source});")
    response = await js.run("value.js")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.body) == expected


async def test_undefined_is_204(js: JsHarness) -> None:
    js.write("nothing.js", "module.exports = async () => { /* no return */ };")
    response = await js.run("nothing.js")
    assert (response.status, response.body, response.headers) == (204, b"", {})


async def test_thrown_error_is_500_with_message_and_logged_with_stack(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        "boom.js",
        "function inner() { throw new Error('the disk is lava'); }\n"
        "module.exports = async () => { inner(); };",
    )
    with caplog.at_level(logging.ERROR, logger="fazt.app.alpha"):
        response = await js.run("boom.js")
    assert response.status == 500
    assert json.loads(response.body) == {"error": "the disk is lava"}
    records = [r for r in caplog.records if r.name == "fazt.app.alpha"]
    assert len(records) == 1
    text = records[0].getMessage()
    assert "api/boom.js" in text and "the disk is lava" in text
    assert "at inner" in text  # the JS stack
    assert "Traceback" not in caplog.text


async def test_rejected_promise_and_thrown_non_error(js: JsHarness) -> None:
    js.write("reject.js", "module.exports = () => Promise.reject(new TypeError('nope'));")
    js.write("string.js", "module.exports = async () => { throw 'plain string'; };")
    js.write("object.js", "module.exports = async () => { throw { code: 7 }; };")
    assert await js.json("reject.js") == {"error": "nope"}
    assert await js.json("string.js") == {"error": "plain string"}
    assert await js.json("object.js") == {"error": '{"code":7}'}


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ("{ json: 1, status: 'teapot' }", 'invalid status "teapot"'),
        ("{ json: 1, status: 99 }", "invalid status 99"),
        ("{ json: 1, status: 200.5 }", "invalid status 200.5"),
        ("{ json: 1, headers: 'x' }", "headers: they must be an object"),
        ("{ json: 1, headers: { 'Bad Name': 'x' } }", 'invalid header name "Bad Name"'),
        ("{ json: 1, headers: { 'X-A': 'a\\r\\nX-B: b' } }", "line break"),
        ("{ json: 1, headers: { 'X-A': { nested: 1 } } }", "must be a string or a number"),
        ("{ json: 1, headers: { 'X-A': 'caf\\u00e9 \\u20ac' } }", "printable ASCII or Latin-1"),
        ("{ body: 42 }", "body that is not a string"),
        ("{ body: 'x', json: 1 }", "both json and body"),
        ("{ json: 10n }", "not JSON-serialisable"),
        ("(() => { const a = {}; a.a = a; return { json: a }; })()", "not JSON-serialisable"),
    ],
)
async def test_bad_responses_are_500_with_a_clear_error(
    js: JsHarness, response: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    js.write("bad.js", f"module.exports = async () => ({response});")
    with caplog.at_level(logging.ERROR):
        result = await js.run("bad.js")
    assert result.status == 500
    error = json.loads(result.body)["error"]
    assert message in error
    assert "Traceback" not in caplog.text


async def test_module_must_export_a_function(js: JsHarness) -> None:
    js.write("noexport.js", "exports.x = 1;")
    result = await js.run("noexport.js")
    assert result.status == 500
    assert "must export a function" in json.loads(result.body)["error"]


async def test_syntax_error_is_500_naming_the_file(js: JsHarness) -> None:
    js.write("broken.js", "module.exports = async (req) => { return {json: 1 ;")
    result = await js.run("broken.js")
    assert result.status == 500
    error = json.loads(result.body)["error"]
    assert "api/broken.js" in error and "SyntaxError" in error


async def test_missing_handler_file_is_404(js: JsHarness) -> None:
    result = await js.run("ghost.js")
    assert result.status == 404
    assert json.loads(result.body) == {"error": "no handler api/ghost.js"}


async def test_console_and_fazt_log_go_to_the_app_logger(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write(
        "logs.js",
        "module.exports = async () => {\n"
        "  console.log('plain', 1, { a: [1] });\n"
        "  console.info('info line');\n"
        "  console.warn('careful');\n"
        "  console.error('bad', new Error('inside'));\n"
        "  console.debug('details');\n"
        "  fazt.log('from fazt.log', fazt.app.slug);\n"
        "  return 'ok';\n"
        "};",
    )
    with caplog.at_level(logging.DEBUG, logger="fazt.app"):
        assert await js.json("logs.js") == "ok"
    got = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("fazt.app.alpha", "INFO", 'plain 1 {"a":[1]}') in got
    assert ("fazt.app.alpha", "INFO", "info line") in got
    assert ("fazt.app.alpha", "WARNING", "careful") in got
    assert ("fazt.app.alpha", "DEBUG", "details") in got
    assert ("fazt.app.alpha", "INFO", "from fazt.log alpha") in got
    errors = [m for n, lvl, m in got if lvl == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("bad Error: inside")
    assert all(
        getattr(r, "app", None) == "alpha" for r in caplog.records if r.name == "fazt.app.alpha"
    )


async def test_console_output_is_capped_per_request_even_across_host_calls(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 lines of 1,000 bytes, a host call between each: the cap is per request
    # (64 KB by default), not per stretch between host calls.
    js.write(
        "flood.js",
        "module.exports = async () => {\n"
        "  const line = 'x'.repeat(1000);\n"
        "  for (let i = 0; i < 200; i++) { console.log(line); await fazt.test.echo(i); }\n"
        "  return 'done';\n"
        "};",
    )
    with caplog.at_level(logging.INFO, logger="fazt.app"):
        assert await js.json("flood.js") == "done"
    lines = [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"]
    assert lines[-1].startswith("console output truncated: this request wrote more than 65536")
    assert lines[:-1] == ["x" * 1000] * (65536 // 1001)
    # The next request has its own allowance.
    caplog.clear()
    js.write("one.js", "module.exports = () => { console.log('again'); };")
    with caplog.at_level(logging.INFO, logger="fazt.app"):
        await js.run("one.js")
    assert [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"] == ["again"]


async def test_console_limit_counts_utf8_bytes(
    tmp_path: Path, host: HostRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    engine = JsEngine(threads=1, console_limit_bytes=10)
    engine.register_namespace("test", host.namespace())
    harness = JsHarness(engine, tmp_path, host)
    try:
        # "éé" is 4 bytes + 1 for its line: two lines fit in 10, the third does not.
        harness.write(
            "u.js", "module.exports = () => { for (let i = 0; i < 5; i++) console.log('éé'); };"
        )
        with caplog.at_level(logging.INFO, logger="fazt.app"):
            await harness.run("u.js")
    finally:
        engine.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"]
    assert lines[:2] == ["éé", "éé"] and len(lines) == 3
    assert lines[2].startswith("console output truncated")


async def test_one_console_call_is_one_log_line(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "2026-11-30 10:00:00,000 INFO fazt.kernel: fazt stopped"
    js.write(
        "forge.js",
        "module.exports = () => {\n"
        f"  console.log('hello\\n{forged}\\r\\n\\u2028x\\\\n');\n"
        "  console.error(new Error('first\\nsecond'));\n"
        "  console.log('lone \\ud800 surrogate', '\\u0007bell');\n"
        "};",
    )
    with caplog.at_level(logging.INFO, logger="fazt.app"):
        await js.run("forge.js")
    lines = [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"]
    assert len(lines) == 3
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert lines[0] == f"hello\\n{forged}\\r\\n\\u2028x\\\\n"
    assert lines[1].startswith("Error: first\\nsecond\\n")  # the stack follows, escaped
    assert lines[2] == "lone \\ud800 surrogate \\x07bell"
    for line in lines:
        line.encode("utf-8")  # writable to a UTF-8 log


async def test_a_thrown_error_is_one_log_line(
    js: JsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    js.write("throw.js", "module.exports = () => { throw new Error('a\\nfazt stopped'); };")
    with caplog.at_level(logging.ERROR, logger="fazt.app"):
        response = await js.run("throw.js")
    assert json.loads(response.body) == {"error": "a\nfazt stopped"}  # the client sees it as is
    (line,) = [r.getMessage() for r in caplog.records if r.name == "fazt.app.alpha"]
    assert "\n" not in line and "a\\nfazt stopped" in line and "| stack:" in line


async def test_fazt_app_identity(js: JsHarness) -> None:
    js.write("who.js", "module.exports = () => fazt.app;")
    assert await js.json("who.js") == {"slug": "alpha", "uuid": "app_alpha"}
    js.write("who.js", "module.exports = () => fazt.app;", app="beta")
    assert await js.json("who.js", app="beta") == {"slug": "beta", "uuid": "app_beta"}


async def test_promise_that_never_settles_is_500_not_a_hang(js: JsHarness) -> None:
    js.write("forever.js", "module.exports = () => new Promise(() => {});")
    result = await js.run("forever.js")
    assert result.status == 500
    assert "never settled" in json.loads(result.body)["error"]


async def test_a_number_too_large_for_a_double_is_infinity_in_js(js: JsHarness) -> None:
    js.write("big.js", "module.exports = (req) => ({ json: [req.json.n === Infinity, req.json] });")
    # JSON.stringify writes Infinity as null: nothing non-finite leaves the sandbox.
    assert await js.json("big.js", body=b'{"n": 1e400}') == [True, {"n": None}]


async def test_unicode_and_invalid_utf8_in_the_body(js: JsHarness) -> None:
    js.write("echo.js", "module.exports = (req) => ({ json: [req.body, req.body.length] });")
    response = await js.run("echo.js", body="héllo \U0001f600".encode())
    assert json.loads(response.body) == ["héllo \U0001f600", 8]  # UTF-16 length, as in JS
    # Invalid UTF-8 (here an encoded lone surrogate) is replaced, byte by byte.
    response = await js.run("echo.js", body=b"bad \xed\xb2\x80")
    assert response.status == 200
    assert json.loads(response.body) == ["bad \ufffd\ufffd\ufffd", 7]
