"""Strict JSON: the check agrees with what strict UTF-8 JSON can encode, and says where."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.realtime.strict_json import (
    MAX_DEPTH,
    NotStrictJSON,
    check_strict_json,
    strict_json_problem,
)

#: Any text, with lone surrogates (rare in ``characters()`` alone) drawn often.
TEXT = st.text(alphabet=st.characters() | st.characters(categories=["Cs"]), max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def _encodes_strictly(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is one
        return False
    return True


@given(VALUES)
def test_the_check_agrees_with_a_strict_encoder(value: Any) -> None:
    assert (strict_json_problem(value) is None) == _encodes_strictly(value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"user": {"name": "\ud800"}}, "a lone surrogate in a string at data.user.name"),
        ({"a": ["ok", "\udfff"]}, "a lone surrogate in a string at data.a[1]"),
        ({"x\udc00": 1}, "a lone surrogate in a key at data"),
        ([1, float("inf")], "a non-finite number at data[1]"),
        ({"n": float("nan")}, "a non-finite number at data.n"),
        (json.loads('{"big": 1e400}'), "a non-finite number at data.big"),
        ({1: "a"}, "a key that is not a string at data"),
        ({"b": b"bytes"}, "a value of type bytes at data.b"),
        ({"two words": {"k": float("-inf")}}, 'a non-finite number at data["two words"].k'),
    ],
)
def test_each_problem_is_named_with_its_place(value: Any, problem: str) -> None:
    assert strict_json_problem(value, "data") == problem
    with pytest.raises(NotStrictJSON, match=r"^a "):
        check_strict_json(value, "data")


def test_what_strict_json_accepts() -> None:
    accepted: list[Any] = [
        None,
        True,
        0,
        -(10**300),
        1.5e308,
        "",
        "caf\u00e9 \U0001f600",  # a pair-encoded character is a character, not a surrogate
        {"nested": [{"a": [None]}], "t": (1, 2)},
    ]
    for value in accepted:
        assert strict_json_problem(value) is None, value


def test_nesting_is_bounded_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert strict_json_problem(deep) is None
    deeper = [deep]
    problem = strict_json_problem(deeper, "data")
    assert problem is not None and problem.startswith(f"nesting deeper than {MAX_DEPTH} levels")
    # Far deeper than the interpreter's recursion limit: still an answer, not a crash.
    abyss: Any = []
    for _ in range(100_000):
        abyss = [abyss]
    assert strict_json_problem(abyss) is not None


def test_a_hostile_key_is_never_echoed_in_full_nor_raw() -> None:
    problem = strict_json_problem({"k" * 500 + "\ud800": {"x": float("nan")}}, "data")
    assert problem is not None
    assert len(problem) < 120
    problem.encode("utf-8")  # the location itself is always sendable
    assert strict_json_problem({"\ud800": 1}) == "a lone surrogate in a key at value"
