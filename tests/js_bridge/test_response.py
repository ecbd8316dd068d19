"""The envelope -> HTTP response mapping, without QuickJS (pure)."""

from __future__ import annotations

import json

import pytest

from fazt.js_bridge.response import (
    BadResponseError,
    format_seconds,
    memory_limit_response,
    response_from_envelope,
    time_limit_response,
    validate_headers,
    validate_status,
)


@pytest.mark.parametrize("status", [100, 200, 204.0, 599])
def test_valid_statuses(status: float) -> None:
    assert validate_status(status) == int(status)


@pytest.mark.parametrize("status", [99, 600, 200.5, True, "200", None, float("inf"), [200]])
def test_invalid_statuses(status: object) -> None:
    with pytest.raises(BadResponseError, match="integer from 100 to 599"):
        validate_status(status)


def test_headers_numbers_become_text() -> None:
    assert validate_headers({"X-A": 1, "X-B": 1.5, "X-C": "c"}) == {
        "X-A": "1",
        "X-B": "1.5",
        "X-C": "c",
    }


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
        {"transfer-encoding": "chunked"},
        {"Connection": "close"},
    ],
)
def test_invalid_headers(headers: object) -> None:
    with pytest.raises(BadResponseError):
        validate_headers(headers)


def test_envelope_kinds() -> None:
    empty = response_from_envelope({"kind": "empty", "status": 204, "headers": {}, "body": ""})
    assert (empty.status, empty.headers, empty.body) == (204, {}, b"")
    text = response_from_envelope({"kind": "text", "status": None, "headers": None, "body": "é"})
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
