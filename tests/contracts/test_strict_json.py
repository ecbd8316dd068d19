"""``check_strict_json``: what strict UTF-8 JSON can carry, and where a value breaks it;
``loads_without_constants``: json.loads without NaN and Infinity."""

from __future__ import annotations

import collections
import enum
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.contracts.strict_json import (
    MAX_DEPTH,
    StrictJsonError,
    _plainly_strict,
    check_strict_json,
    loads_without_constants,
)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**70),
        1.5,
        "",
        "héllo \U0001f600",
        [],
        {},
        {"a": [1, {"b": None}], "c d": "x"},
    ],
)
def test_strict_values_pass(value: object) -> None:
    check_strict_json(value)


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        (math.inf, "$", "a number that is not finite"),
        ({"x": json.loads("1e400")}, "$.x", "a number that is not finite"),
        ({"info": {"x": float("nan")}}, "$.info.x", "a number that is not finite"),
        (["ok", "\ud800"], "$[1]", "a string that is not valid Unicode (lone surrogate)"),
        ({"name": json.loads('"\\udc80"')}, "$.name", "a string that is not valid Unicode"),
        ({"\ud800": 1}, '$["\\ud800"]', "a key that is not valid Unicode"),
        ({1: "x"}, "$", "a key that is not a string (1)"),
        ({"a b": {"c": (1, 2)}}, '$["a b"].c', "a tuple, which JSON has no form for"),
        ({"s": {1, 2}}, "$.s", "a set, which JSON has no form for"),
    ],
)
def test_the_first_bad_place_is_named(value: object, path: str, reason: str) -> None:
    with pytest.raises(StrictJsonError) as raised:
        check_strict_json(value)
    assert raised.value.path == path
    assert raised.value.reason.startswith(reason)
    assert str(raised.value) == f"{raised.value.reason} at {path}"
    str(raised.value).encode("ascii")  # safe to show and to log


def test_depth_is_bounded_without_recursion() -> None:
    deep: object = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    with pytest.raises(StrictJsonError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        check_strict_json(deep)
    shallow: object = 1
    for _ in range(MAX_DEPTH):
        shallow = [shallow]
    check_strict_json(shallow)


def test_a_custom_root_path() -> None:
    with pytest.raises(StrictJsonError) as raised:
        check_strict_json({"x": math.nan}, path="argument 2")
    assert raised.value.path == "argument 2.x"


# Lone surrogates included (text() leaves them out by default).
_any_char = st.characters(exclude_categories=())
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(_any_char),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(_any_char), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_json_values)
def test_it_agrees_with_strict_encoding(value: object) -> None:
    """A value passes exactly when strict JSON encoding (no NaN/Infinity, UTF-8) works."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        with pytest.raises(StrictJsonError):
            check_strict_json(value)
    else:
        check_strict_json(value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", '{"a": [1, NaN]}'])
def test_loads_without_constants_refuses_nan_and_infinity(constant: str) -> None:
    with pytest.raises(ValueError, match="is not JSON"):
        loads_without_constants(constant)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "message", "data": [1, 2.5, "é", null, true]}',
        '{"type": "message", "data": [1, 2.5, "é", null, true]}'.encode(),
        bytearray('{"type": "message", "data": [1, 2.5, "é", null, true]}'.encode()),
        '{"type": "message", "data": [1, 2.5, "é", null, true]}'.encode("utf-16"),
    ],
)
def test_loads_without_constants_reads_what_json_loads_reads(text: str | bytes) -> None:
    assert loads_without_constants(text) == json.loads(text)


def test_loads_without_constants_refuses_what_json_loads_refuses() -> None:
    for bad in ("", "{", "[1,]", b"\xff\xfe\x00", '"\ufeff"x'):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            loads_without_constants(bad)


@given(_json_values)
def test_the_quick_walk_accepts_exactly_what_the_naming_walk_accepts(value: object) -> None:
    """For the types ``json.loads`` makes, the quick walk is the whole answer."""
    try:
        check_strict_json(value)
    except StrictJsonError:
        assert not _plainly_strict(value, MAX_DEPTH)
    else:
        assert _plainly_strict(value, MAX_DEPTH)


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_both_walks_draw_the_depth_line_in_the_same_place(levels: int) -> None:
    nested: object = "leaf"
    for level in range(levels):
        nested = [nested] if level % 2 else {"k": nested}
    quick = _plainly_strict(nested, MAX_DEPTH)
    assert quick is (levels <= MAX_DEPTH)
    if quick:
        check_strict_json(nested)
    else:
        with pytest.raises(StrictJsonError, match="nesting deeper"):
            check_strict_json(nested)


def test_subclasses_are_not_quick_but_still_strict() -> None:
    class Level(enum.IntEnum):
        HIGH = 2

    value = collections.OrderedDict(level=Level.HIGH, tags=["a"])
    assert not _plainly_strict(value, MAX_DEPTH)
    check_strict_json(value)  # the naming walk accepts them
