"""Handler model: req, response mapping, errors, logging (engine driven directly)."""

from __future__ import annotations

import json
import logging

import pytest

from tests.js_bridge.conftest import JsHarness, make_request

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
        body='{"x": [1, 2]}',
        json={"x": [1, 2]},
        user={"sub": "u1", "roles": ["admin"]},
    )
    assert await js.json("echo.js", request=request) == request


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
        ("{ json: 1, headers: { 'Content-Length': '3' } }", "may not set the Content-Length"),
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


async def test_console_flood_is_capped(js: JsHarness, caplog: pytest.LogCaptureFixture) -> None:
    js.write(
        "flood.js", "module.exports = () => { for (let i = 0; i < 5000; i++) console.log(i); };"
    )
    with caplog.at_level(logging.INFO, logger="fazt.app"):
        assert (await js.run("flood.js")).status == 204
    lines = [r for r in caplog.records if r.name == "fazt.app.alpha"]
    assert len(lines) == 1001  # 1000 lines, then one warning counting the rest
    assert "4000 console lines dropped" in lines[-1].getMessage()


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


async def test_nan_in_the_request_json_is_a_400(js: JsHarness) -> None:
    js.write("echo.js", "module.exports = (req) => ({ json: req.json });")
    response = await js.run("echo.js", request=make_request(json={"x": float("nan")}))
    assert response.status == 400
    assert "NaN or Infinity" in json.loads(response.body)["error"]


async def test_unicode_and_lone_surrogates_in_the_request_survive(js: JsHarness) -> None:
    js.write("echo.js", "module.exports = (req) => ({ json: [req.body, req.body.length] });")
    response = await js.run("echo.js", request=make_request(body="héllo \U0001f600"))
    assert json.loads(response.body) == ["héllo \U0001f600", 8]  # UTF-16 length, as in JS
    response = await js.run("echo.js", request=make_request(body="bad \udc80"))
    assert response.status == 200
    assert json.loads(response.body)[1] == 5
