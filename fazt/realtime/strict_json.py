"""Strict JSON: does a value encode as UTF-8 JSON text, with finite numbers only?

Python's ``json`` is lenient where it reads: ``json.loads`` turns ``1e400`` into
infinity and ``"\\ud800"`` into a string holding a lone surrogate, and a JWT's
claims are decoded the same way. Neither value can be written out again as
strict UTF-8 JSON (``allow_nan=False`` refuses the first, ``.encode("utf-8")``
the second), so the realtime server refuses them where they enter: client
frames (``protocol.parse``), token claims (``Commands.verify_token``) and the
server API's arguments (``api``). Code behind those edges never meets a value
it cannot encode.

The walk is iterative (a hostile value cannot exhaust the stack) and bounded
by ``max_depth``, so whatever passes also encodes without a ``RecursionError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Final

#: Deepest nesting of arrays and objects accepted (the JS bridge's bound too).
MAX_DEPTH: Final = 64

#: Longest rendering of one key in a location (a key is client text: never echoed in full).
_MAX_KEY_TEXT: Final = 32
#: Steps of a location shown after its root; a deeper one shows its last steps only.
_MAX_STEPS: Final = 8

# A location is built only when a problem is found: each node keeps its parent's
# trail and its own key, as one tuple.
_Trail = tuple["_Trail", "str | int"] | None


class NotStrictJSON(ValueError):
    """A value that strict UTF-8 JSON cannot carry; ``str(error)`` says what and where."""


def strict_json_problem(
    value: object, root: str = "value", max_depth: int = MAX_DEPTH
) -> str | None:
    """Why ``value`` is not strict JSON, as a short phrase with its location, or None.

    Accepted: ``None``, booleans, integers, finite floats, strings without lone
    surrogates, lists and tuples of accepted values, and mappings whose keys
    are such strings, nested at most ``max_depth`` levels. The location starts
    at ``root``: ``"a lone surrogate in a string at data.user.name"``.
    """
    stack: list[tuple[object, int, _Trail]] = [(value, 0, None)]
    while stack:
        item, depth, trail = stack.pop()
        if isinstance(item, str):
            if not _encodes(item):
                return f"a lone surrogate in a string at {_where(root, trail)}"
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"a non-finite number at {_where(root, trail)}"
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                return f"nesting deeper than {max_depth} levels at {_where(root, trail)}"
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"a key that is not a string at {_where(root, trail)}"
                    if not _encodes(key):
                        return f"a lone surrogate in a key at {_where(root, trail)}"
                    stack.append((child, depth + 1, (trail, key)))
            else:
                for index, child in enumerate(item):
                    stack.append((child, depth + 1, (trail, index)))
        else:
            return f"a value of type {type(item).__name__} at {_where(root, trail)}"
    return None


def check_strict_json(value: object, root: str = "value", max_depth: int = MAX_DEPTH) -> None:
    """Raise ``NotStrictJSON`` when ``strict_json_problem`` finds a problem."""
    problem = strict_json_problem(value, root, max_depth)
    if problem is not None:
        raise NotStrictJSON(problem)


def _encodes(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(root: str, trail: _Trail) -> str:
    """``root.key[3].other``; odd keys as ASCII JSON strings, cut short; at most
    ``_MAX_STEPS`` steps (the last ones, after ``...``)."""
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        if len(parts) == _MAX_STEPS:
            parts.append("...")
            break
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif key.isidentifier() and key.isascii() and len(key) <= _MAX_KEY_TEXT:
            parts.append(f".{key}")
        else:
            parts.append(f"[{_quoted(key)}]")
    return root + "".join(reversed(parts))


def _quoted(key: str) -> str:
    # ASCII escapes: a lone surrogate in a key must not break the error message itself.
    text = json.dumps(key[:_MAX_KEY_TEXT])
    return text if len(key) <= _MAX_KEY_TEXT else text[:-1] + '..."'
