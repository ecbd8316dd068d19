"""The envelope -> HTTP response mapping, without QuickJS (pure)."""

from __future__ import annotations

import json

import pytest

from fazt.contracts.js_engine import JsResponse
from fazt.js_bridge.response import (
    BadResponseError,
    format_seconds,
    memory_limit_response,
    response_from_envelope,
    time_limit_response,
    validate_headers,
    validate_status,
)


@pytest.mark.parametrize("status", [200, 204.0, 404, 599])
def test_valid_statuses(status: float) -> None:
    assert validate_status(status) == int(status)


@pytest.mark.parametrize(
    "status", [100, 101, 199, 600, 200.5, True, "200", None, float("inf"), [200]]
)
def test_invalid_statuses(status: object) -> None:
    # 1xx are interim responses: a handler's answer is final.
    with pytest.raises(BadResponseError, match="integer from 200 to 599"):
        validate_status(status)


def test_headers_numbers_become_text() -> None:
    assert validate_headers({"X-A": 1, "X-B": 1.5, "X-C": "c"}) == (
        {"X-A": "1", "X-B": "1.5", "X-C": "c"},
        [],
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Length", "3"),
        ("transfer-encoding", "chunked"),
        ("Connection", "close"),
        ("Service-Worker-Allowed", "/"),
        ("service-worker-allowed", "/other/"),
        ("Set-Cookie", "sid=1; Path=/; Domain=localhost"),
        ("set-cookie", "sid=1;domain=.example.com;HttpOnly"),
        ("Set-Cookie", "sid=1; DOMAIN"),
    ],
)
def test_headers_a_handler_may_not_set_are_dropped_with_a_reason(name: str, value: str) -> None:
    kept, dropped = validate_headers({name: value, "X-Kept": "yes"})
    assert kept == {"X-Kept": "yes"}
    (note,) = dropped
    assert note.startswith(f"dropped the {name} header: handlers may not set it (")


@pytest.mark.parametrize(
    "cookie", ["sid=1", "sid=1; Path=/; HttpOnly; Secure; SameSite=Lax", "domain=x; Path=/"]
)
def test_cookies_without_a_domain_attribute_are_kept(cookie: str) -> None:
    assert validate_headers({"Set-Cookie": cookie}) == ({"Set-Cookie": cookie}, [])


@pytest.mark.parametrize(
    "headers",
    [
        [],
        {"": "x"},
        {"a b": "x"},
        {"X-A": True},
        {"X-A": None},
        {"X-A": "a\nb"},
        {"X-A": "a\0b"},
        {"X-A": "tab\there"},
        {"X-A": "\x7f"},
        {"X-A": "euro \u20ac"},  # HTTP/1.1 carries Latin-1 at most
        {"X" * 257: "long name"},
    ],
)
def test_invalid_headers(headers: object) -> None:
    with pytest.raises(BadResponseError):
        validate_headers(headers)


def test_envelope_kinds() -> None:
    empty = response_from_envelope({"kind": "empty", "status": 204, "headers": {}, "body": ""})
    assert empty.response == JsResponse(204, {}, b"") and empty.dropped == []
    text = response_from_envelope(
        {"kind": "text", "status": None, "headers": None, "body": "é"}
    ).response
    assert (text.status, text.headers["Content-Type"], text.body) == (
        200,
        "text/plain; charset=utf-8",
        "é".encode(),
    )
    with pytest.raises(BadResponseError):
        response_from_envelope({"kind": "weird"})
    with pytest.raises(BadResponseError, match="not valid Unicode"):
        response_from_envelope({"kind": "text", "status": None, "headers": None, "body": "\ud800"})


def test_limit_responses_are_the_documented_ones() -> None:
    assert format_seconds(5.0) == "5 s" and format_seconds(0.25) == "0.25 s"
    time_limit = time_limit_response(5.0)
    assert time_limit.status == 503
    assert json.loads(time_limit.body) == {"error": "handler exceeded its CPU time limit (5 s)"}
    memory = memory_limit_response(64)
    assert memory.status == 500
    assert json.loads(memory.body) == {"error": "handler exceeded its memory limit (64 MB)"}


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_carry_no_body(status: int) -> None:
    built = response_from_envelope(
        {"kind": "json", "status": status, "headers": {"ETag": '"1"'}, "body": '{"a": 1}'}
    )
    assert (built.response.status, built.response.body) == (status, b"")
    assert built.response.headers["ETag"] == '"1"'
