"""Where an app's handlers log, and how their text is made safe for a log line.

Every record an app causes goes to the logger ``fazt.app.<slug>`` with
``extra={"app": slug}``. Text that a handler controls (``console.*`` output,
error messages, stacks) is escaped first, so that one console call or one
error is exactly one log line: a newline in it cannot forge a line such as
``... INFO fazt.kernel: fazt stopped``.
"""

from __future__ import annotations

import logging
import re

# Line breaks of any kind (C0 and C1 controls, DEL, U+2028/U+2029), the escape
# character itself, and lone surrogates, which a UTF-8 log stream cannot hold.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\\\\\u2028\u2029\ud800-\udfff]")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_log_text(text: str) -> str:
    """``text`` on one line: ``\\`` -> ``\\\\``, newline -> ``\\n``, other controls -> ``\\xNN``.

    Printable text, non-ASCII letters included, is kept as it is.
    """
    return _UNSAFE.sub(_escape_one, text)


def app_logger(slug: str) -> logging.Logger:
    """The logger of the app ``slug``; looked up only when there is something to log."""
    return logging.getLogger(f"fazt.app.{slug}")
