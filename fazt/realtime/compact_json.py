"""Compact JSON text for server messages, from one encoder made once.

``JSONEncoder.encode`` builds a new C encoder object for every call, which
costs as much as encoding a short message; a server message is encoded once
per publish (the fan-out writes the same bytes to every subscriber), and a
chat room publishes thousands of short ones per second. So the C encoder is
made once here and called directly. It is made without the circular
reference check (its memo cannot be shared safely between calls that fail
midway); a cycle, which no value decoded from JSON can hold, ends in Python's
recursion limit instead and is reported as the ``ValueError`` the check would
have raised. Where the C encoder is missing, or takes other arguments (not
CPython), the plain encoder serves.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterable
from typing import Any

_PLAIN = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


#: The C encoder's call: ``(value, indent level)`` -> the text's chunks.
_Chunks = Callable[[Any, int], Iterable[str]]


def _made_once() -> _Chunks | None:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        made: _Chunks = make(
            None,  # no circular reference memo (see the module docstring)
            _PLAIN.default,
            json.encoder.encode_basestring,  # ensure_ascii=False
            None,  # no indent
            ":",
            ",",
            False,  # sort_keys
            False,  # skipkeys
            False,  # allow_nan
        )
    except TypeError:
        return None
    return made


_ENCODER = _made_once()


def dumps(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``.

    Raises ``ValueError`` (a non-finite float, a cycle) or ``TypeError`` (a value
    JSON has no form for) as that call does.
    """
    if _ENCODER is None or isinstance(value, str):
        return _PLAIN.encode(value)
    try:
        return "".join(_ENCODER(value, 0))
    except RecursionError as error:
        raise ValueError("Circular reference detected, or nesting too deep") from error
