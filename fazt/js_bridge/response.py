"""Turning what a handler produced into a finished HTTP response (pure; no QuickJS here).

This module is the one owner of the rules for what a handler may answer; the
kernel writes the :class:`~fazt.contracts.js_engine.JsResponse` it gets as it is.

``prelude.js`` reduces every handler outcome to an *envelope*, one JSON object:

- a response: ``{"kind": "json"|"text"|"empty", "status": int|null,
  "headers": object|null, "body": str}``;
- an error: ``{"error": message, "name": str, "stack": str, "limit": null|"memory"|"time"}``.

The mapping, which ``docs/js-handlers.md`` documents:

- ``{json, status?, headers?}``: ``status`` (200), JSON of ``json``;
- ``{body, status?, headers?}``: ``status`` (200), ``body`` (a string) as text;
- ``undefined`` (or no return): 204, empty body;
- any other value (``null`` included): 200, JSON of the value;
- 204 and 304 never carry a body (what the handler gave is left out);
- a malformed status or header (see :func:`validate_status`, :func:`validate_headers`):
  500 ``{"error": "<what is wrong>"}``;
- a well-formed header that handlers may not set (:func:`refusal`): dropped, and
  the caller logs one line per dropped header.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from fazt.contracts.js_engine import JSON_TYPE, JsResponse, json_error

TEXT_TYPE = "text/plain; charset=utf-8"
#: The statuses a handler may answer with (1xx are interim responses, not answers).
STATUS_MIN, STATUS_MAX = 200, 599
_STATUS_RULE = f"it must be an integer from {STATUS_MIN} to {STATUS_MAX}"
#: RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
#: What an HTTP/1.1 header value can carry: printable ASCII and Latin-1, spaces, no controls.
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\xa0-\xff]*$")
#: Framing headers belong to the server; a handler setting them would corrupt the response.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_BODY_STATUSES = frozenset({204, 304})


class BadResponseError(ValueError):
    """The handler's response object is invalid; the message says how."""


@dataclass(frozen=True)
class BuiltResponse:
    """A finished response, and one sentence per header the handler may not set."""

    response: JsResponse
    dropped: list[str] = field(default_factory=list)


def format_seconds(seconds: float) -> str:
    """``5.0`` -> ``"5 s"``, ``0.5`` -> ``"0.5 s"``: how limits appear in messages."""
    return f"{seconds:g} s"


def time_limit_response(seconds: float) -> JsResponse:
    """503: the handler used up its CPU time budget."""
    return json_error(503, f"handler exceeded its CPU time limit ({format_seconds(seconds)})")


def wall_time_limit_response(seconds: float) -> JsResponse:
    """503: the request took longer than its wall-clock time limit."""
    return json_error(
        503, f"handler exceeded its wall-clock time limit ({format_seconds(seconds)})"
    )


def memory_limit_response(megabytes: int) -> JsResponse:
    """500: the handler's context ran out of its memory limit."""
    return json_error(500, f"handler exceeded its memory limit ({megabytes} MB)")


#: ``Retry-After`` (seconds) when an app's handlers are too busy to take a request.
RETRY_AFTER_SECONDS = 1


def busy_response() -> JsResponse:
    """503 with ``Retry-After``: the app's queue is full, or the request waited in it
    for its whole wall-clock time."""
    return json_error(
        503,
        "too many requests are waiting for this app's JS handlers; retry later",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def validate_status(status: Any) -> int:
    """An integer from 200 to 599 (JS numbers like ``200.0`` count); else BadResponseError."""
    if isinstance(status, bool) or not isinstance(status, int | float):
        raise BadResponseError(
            f"the handler returned an invalid status {json.dumps(status)}: " + _STATUS_RULE
        )
    if isinstance(status, float) and (not math.isfinite(status) or not status.is_integer()):
        raise BadResponseError(f"the handler returned an invalid status {status!r}: {_STATUS_RULE}")
    value = int(status)
    if not STATUS_MIN <= value <= STATUS_MAX:
        raise BadResponseError(f"the handler returned an invalid status {value}: {_STATUS_RULE}")
    return value


def refusal(name: str, value: str) -> str | None:
    """Why a handler may not set this (well-formed) header, or None when it may."""
    lower = name.lower()
    if lower in _FRAMING_HEADERS:
        return "the server sets it"
    if lower == "service-worker-allowed":
        return "it would let a service worker control paths outside its own folder"
    if lower == "set-cookie" and _has_domain_attribute(value):
        return "a cookie with a Domain attribute would be sent to other apps' hosts"
    return None


def _has_domain_attribute(cookie: str) -> bool:
    attributes = cookie.split(";")[1:]
    return any(part.split("=", 1)[0].strip().lower() == "domain" for part in attributes)


def validate_headers(headers: Any) -> tuple[dict[str, str], list[str]]:
    """The headers to send, and one sentence per header dropped (see :func:`refusal`).

    Raises BadResponseError unless ``headers`` is an object of valid names
    (RFC 9110 tokens, at most 256 characters) to strings or numbers whose text
    is printable ASCII or Latin-1.
    """
    if not isinstance(headers, dict):
        raise BadResponseError("the handler returned invalid headers: they must be an object")
    result: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise BadResponseError(
                f"the handler returned an invalid header name {json.dumps(name)}"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadResponseError(
                f"the handler returned an invalid value for header {name}: "
                "it must be a string or a number"
            )
        text = value if isinstance(value, str) else json.dumps(value)
        if not _HEADER_VALUE.match(text):
            raise BadResponseError(
                f"the handler returned an invalid value for header {name}: it must be printable "
                "ASCII or Latin-1 text (no line breaks or other control characters)"
            )
        why = refusal(name, text)
        if why is not None:
            dropped.append(f"dropped the {name} header: handlers may not set it ({why})")
            continue
        result[name] = text
    return result, dropped


def response_from_envelope(envelope: dict[str, Any]) -> BuiltResponse:
    """The finished response for a *response* envelope; raises BadResponseError."""
    kind = envelope.get("kind")
    status = envelope.get("status")
    headers = envelope.get("headers")
    body = envelope.get("body")
    if kind == "empty":
        return BuiltResponse(JsResponse(204, {}, b""))
    if kind not in ("json", "text"):
        raise BadResponseError("the handler's response could not be understood")
    code = 200 if status is None else validate_status(status)
    out, dropped = ({}, []) if headers is None else validate_headers(headers)
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
    if code in _NO_BODY_STATUSES:
        data = b""
    return BuiltResponse(JsResponse(code, out, data), dropped)
