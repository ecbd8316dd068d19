"""Turning what a handler produced into an HTTP response (pure; no QuickJS here).

``prelude.js`` reduces every handler outcome to an *envelope*, one JSON object:

- a response: ``{"kind": "json"|"text"|"empty", "status": int|null,
  "headers": object|null, "body": str}``;
- an error: ``{"error": message, "name": str, "stack": str, "limit": null|"memory"|"time"}``.

This module validates the envelope (status, header names and values) and builds
the :class:`JsResponse`. The mapping, which ``docs/js-handlers.md`` documents:

- ``{json, status?, headers?}``: ``status`` (200), JSON of ``json``;
- ``{body, status?, headers?}``: ``status`` (200), ``body`` (a string) as text;
- ``undefined`` (or no return): 204, empty body;
- any other value (``null`` included): 200, JSON of the value;
- throws or rejects: 500 ``{"error": message}``;
- bad status, headers or body: 500 ``{"error": "<what is wrong>"}``;
- over the CPU time limit: 503 ``{"error": "handler exceeded its CPU time limit (5 s)"}``;
- over the memory limit: 500 ``{"error": "handler exceeded its memory limit (64 MB)"}``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Framing headers belong to the server; a handler setting them would corrupt the response.
_FORBIDDEN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class JsResponse:
    """What a handler run produced: an HTTP status, headers and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


class BadResponseError(ValueError):
    """The handler's response object is invalid; the message says how."""


def error_response(status: int, message: str) -> JsResponse:
    """A JSON ``{"error": message}`` response."""
    body = json.dumps({"error": message}).encode("utf-8")
    return JsResponse(status, {"Content-Type": JSON_TYPE}, body)


def format_seconds(seconds: float) -> str:
    """``5.0`` -> ``"5 s"``, ``0.5`` -> ``"0.5 s"``: how limits appear in messages."""
    return f"{seconds:g} s"


def time_limit_response(seconds: float) -> JsResponse:
    """503: the handler used up its CPU time budget."""
    return error_response(503, f"handler exceeded its CPU time limit ({format_seconds(seconds)})")


def memory_limit_response(megabytes: int) -> JsResponse:
    """500: the handler's context ran out of its memory limit."""
    return error_response(500, f"handler exceeded its memory limit ({megabytes} MB)")


def validate_status(status: Any) -> int:
    """An integer from 100 to 599 (JS numbers like ``200.0`` count); else BadResponseError."""
    if isinstance(status, bool) or not isinstance(status, int | float):
        raise BadResponseError(
            f"the handler returned an invalid status {json.dumps(status)}: "
            "it must be an integer from 100 to 599"
        )
    if isinstance(status, float) and (not math.isfinite(status) or not status.is_integer()):
        raise BadResponseError(
            f"the handler returned an invalid status {status!r}: "
            "it must be an integer from 100 to 599"
        )
    value = int(status)
    if not 100 <= value <= 599:
        raise BadResponseError(
            f"the handler returned an invalid status {value}: it must be an integer from 100 to 599"
        )
    return value


def validate_headers(headers: Any) -> dict[str, str]:
    """A JSON object of header names to strings or numbers; else BadResponseError."""
    if not isinstance(headers, dict):
        raise BadResponseError("the handler returned invalid headers: they must be an object")
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not _TOKEN.match(name):
            raise BadResponseError(
                f"the handler returned an invalid header name {json.dumps(name)}"
            )
        if name.lower() in _FORBIDDEN_HEADERS:
            raise BadResponseError(
                f"the handler may not set the {name} header (the server sets it)"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadResponseError(
                f"the handler returned an invalid value for header {name}: "
                "it must be a string or a number"
            )
        text = value if isinstance(value, str) else json.dumps(value)
        if any(c in text for c in "\r\n\0"):
            raise BadResponseError(
                f"the handler returned an invalid value for header {name}: "
                "it contains a line break or NUL"
            )
        result[name] = text
    return result


def response_from_envelope(envelope: dict[str, Any]) -> JsResponse:
    """The HTTP response for a *response* envelope; raises BadResponseError."""
    kind = envelope.get("kind")
    status = envelope.get("status")
    headers = envelope.get("headers")
    body = envelope.get("body")
    if kind == "empty":
        return JsResponse(204, {}, b"")
    if kind not in ("json", "text"):
        raise BadResponseError("the handler's response could not be understood")
    code = 200 if status is None else validate_status(status)
    out = {} if headers is None else validate_headers(headers)
    if not isinstance(body, str):
        raise BadResponseError(
            "the handler returned a body that is not a string (use json for other values)"
        )
    if not any(name.lower() == "content-type" for name in out):
        out["Content-Type"] = JSON_TYPE if kind == "json" else TEXT_TYPE
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadResponseError("the handler returned text that is not valid Unicode") from exc
    return JsResponse(code, out, data)
