"""Token values never reach a log line.

A JWT travels in ``?token=`` on ``/_ws`` upgrades and ``/api`` calls, and a
request's URI shows up in many log lines: the access log, Tornado's
"Uncaught exception GET /x?token=... (ip)" and its ``HTTPServerRequest(...)``
repr, "Malformed HTTP message" lines. Two layers keep the value out:

- at the source, the access log prints the path and the query with the
  token's value replaced (``redact_query``, used by ``fazt.edge.access_log``);
- as a safety net, ``install_log_redaction()`` wraps the process's log record
  factory so that every record, from any logger and at any level, has its
  message, its formatted traceback and its stack text passed through
  ``redact_tokens`` when it is created.

``redact_tokens`` replaces the value of every ``token=`` parameter (the name
compared after percent-decoding and case-folding, so ``%74oken=`` counts too)
and anything shaped like a JWT (``eyJ….eyJ….…``) with ``[redacted]``. A
value runs to the next ``&``, ``#`` or white space, so a value that a log
line quotes loses its closing quote rather than leak its tail.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
#: The query parameter whose value is secret.
TOKEN_PARAMETER = "token"

# A parameter name and its "=", starting the text or following white space, a
# query or pair separator, a quote, an opening bracket or a comma. Only the name
# is consumed, so a parameter inside another one's value (uri='/a?token=...')
# is still found.
_NAME = re.compile(r"(?<![^\s?&;'\"(\[{,])([^\s?&;=#'\"]+)=")
_VALUE_END = re.compile(r"[&\s#]")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _is_token_name(raw_name: str) -> bool:
    return unquote_plus(raw_name).strip().casefold() == TOKEN_PARAMETER


def _redact_parameters(text: str) -> str:
    parts: list[str] = []
    done = 0
    for match in _NAME.finditer(text):
        if match.start() < done or not _is_token_name(match.group(1)):
            continue
        value_start = match.end()
        end = _VALUE_END.search(text, value_start)
        value_end = end.start() if end else len(text)
        if value_end > value_start:
            parts += (text[done:value_start], REDACTED)
            done = value_end
    parts.append(text[done:])
    return "".join(parts)


def redact_tokens(text: str) -> str:
    """``text`` with every ``token=`` value and every JWT-shaped string replaced."""
    if "=" in text:
        text = _redact_parameters(text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


def redact_query(query: str) -> str:
    """A raw query string with the value of each ``token`` parameter replaced.

    The other parameters stay exactly as the client sent them.
    """
    if not query:
        return query
    pairs = query.split("&")
    for index, pair in enumerate(pairs):
        name, equals, value = pair.partition("=")
        if equals and value and _is_token_name(name):
            pairs[index] = f"{name}={REDACTED}"
    return redact_tokens("&".join(pairs))


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record`` in place: message (formatted now), traceback text and stack text.

    A record with nothing to hide is left as it is. A message that cannot be
    formatted keeps only its redacted format string, never its arguments.
    """
    try:
        message = record.getMessage()
    except Exception:
        record.msg = redact_tokens(str(record.msg)) + " (log arguments dropped: unformattable)"
        record.args = ()
    else:
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg = redacted
            record.args = ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        redacted = redact_tokens(text)
        if redacted != text:
            # Standard formatters print exc_text when it is set, instead of
            # formatting exc_info again.
            record.exc_text = redacted
    if record.stack_info:
        record.stack_info = redact_tokens(record.stack_info)


class _RedactingRecordFactory:
    """Wraps the previous record factory; every record it makes is redacted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        redact_record(record)
        return record


def install_log_redaction() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingRecordFactory):
        logging.setLogRecordFactory(_RedactingRecordFactory(current))
