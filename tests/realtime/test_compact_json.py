"""``compact_json.dumps`` writes exactly what ``json.dumps`` with the same options writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.realtime import compact_json


def reference(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def test_the_c_encoder_is_in_use_here() -> None:
    assert compact_json._ENCODER is not None  # CPython: the fast path is what runs


@given(json_values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert compact_json.dumps(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    ["plain", 'é \u2028 "q" \\', 0, -1.5, 10**30, True, None, [], {}, {"a": [1, {"b": None}]}],
)
def test_same_text_for_simple_values(value: Any) -> None:
    assert compact_json.dumps(value) == reference(value)


@pytest.mark.parametrize("value", [math.inf, [math.nan], {"x": -math.inf}])
def test_non_finite_numbers_raise_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        compact_json.dumps(value)


@pytest.mark.parametrize("value", [{1, 2}, {"a": object()}, [b"bytes"]])
def test_values_json_cannot_carry_raise_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        compact_json.dumps(value)


def test_a_cycle_raises_value_error_and_later_calls_still_work() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError):
        compact_json.dumps(looped)
    assert compact_json.dumps({"after": [1]}) == '{"after":[1]}'


def test_without_the_c_encoder_the_plain_one_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact_json, "_ENCODER", None)
    assert compact_json.dumps({"a": "é"}) == '{"a":"é"}'
    with pytest.raises(ValueError):
        compact_json.dumps([math.nan])
