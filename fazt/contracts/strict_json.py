"""Strict JSON: the one test of "can this value be sent as strict UTF-8 JSON?".

Every edge of fazt that takes a decoded JSON value from outside (token claims,
data a client or a JS handler sends) checks it here, where it enters, so that
code behind the edge never meets a value it cannot encode. Python's ``json``
is lenient in exactly the ways that matter: ``json.loads`` turns ``1e400`` into
``inf`` and accepts ``NaN``, and it decodes ``"\\ud800"`` to a string holding
a lone surrogate, which ``.encode("utf-8")`` refuses. So a value is strict JSON
when it is built only of:

- ``None``, ``True``/``False`` and ``int``;
- ``float`` that is finite;
- ``str`` that is valid Unicode (no lone surrogates), as keys too;
- ``list`` and ``dict`` with ``str`` keys, nested at most ``max_depth`` levels.

:func:`check_strict_json` raises :class:`StrictJsonError` naming the first place
that breaks the rule, as a path from ``$`` (``$.info.x``, ``$.role[1]``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: How deep a value may nest before it is refused (well above any real claim or message).
MAX_DEPTH = 64

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; accepting them would break re-encoding.
    raise ValueError(f"{name} is not JSON")


#: Made once: ``json.loads`` with an option builds a new decoder, and its scanner, per
#: call, which costs as much as decoding a short client message.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads_without_constants(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)``, except that ``NaN``, ``Infinity`` and ``-Infinity`` raise
    ``ValueError`` like any other invalid JSON (as does ``RecursionError``, for
    nesting too deep for the parser). Bytes are decoded as ``json.loads`` does."""
    if not isinstance(text, str):
        text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


class StrictJsonError(ValueError):
    """A value that strict JSON cannot carry. ``path`` says where, ``reason`` what."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{reason} at {path}")
        self.path = path
        self.reason = reason


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _key_path(path: str, key: str) -> str:
    # json.dumps escapes what the key may hold (a lone surrogate, a quote) in ASCII.
    return f"{path}.{key}" if _PLAIN_KEY.match(key) else f"{path}[{json.dumps(key)}]"


def _plainly_strict(value: object, max_depth: int) -> bool:
    """True when ``value`` is strict JSON built of the exact types ``json.loads`` makes.

    The common case, checked without building a path per key and item. False
    means "not known to be strict": the walk that names the place then runs
    (it also accepts subclasses, such as an ``IntEnum`` or an ``OrderedDict``).
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and not _valid_unicode(item):
                return False
        elif item is None or kind is int or kind is bool:
            continue
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif depth >= max_depth:
            return False
        elif kind is list:
            for inner in item:
                push((inner, depth + 1))
        elif kind is dict:
            for key, inner in item.items():
                if type(key) is not str or (not key.isascii() and not _valid_unicode(key)):
                    return False
                push((inner, depth + 1))
        else:
            return False
    return True


def check_strict_json(value: object, *, path: str = "$", max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`StrictJsonError` unless ``value`` is strict UTF-8 JSON (see module)."""
    if _plainly_strict(value, max_depth):
        return
    # An explicit stack: a hostile value cannot exhaust Python's recursion limit.
    stack: list[tuple[object, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise StrictJsonError(where, "a number that is not finite")
            continue
        if isinstance(item, str):
            if not _valid_unicode(item):
                raise StrictJsonError(where, "a string that is not valid Unicode (lone surrogate)")
            continue
        if depth >= max_depth:
            raise StrictJsonError(where, f"nesting deeper than {max_depth} levels")
        if isinstance(item, list):
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], f"{where}[{index}]", depth + 1))
            continue
        if isinstance(item, dict):
            for key in reversed(list(item)):
                if not isinstance(key, str):
                    raise StrictJsonError(where, f"a key that is not a string ({key!r})")
                inner = _key_path(where, key)
                if not _valid_unicode(key):
                    raise StrictJsonError(inner, "a key that is not valid Unicode (lone surrogate)")
                stack.append((item[key], inner, depth + 1))
            continue
        raise StrictJsonError(where, f"a {type(item).__name__}, which JSON has no form for")
