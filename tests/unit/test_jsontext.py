"""stepd.jsontext encodes exactly as the json.dumps calls it stands for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepd import jsontext

OPTIONS: dict[str, dict[str, Any]] = {
    "compact": {"separators": (",", ":"), "ensure_ascii": False},
    "compact_ascii": {"separators": (",", ":")},
    "strict": {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False},
    "plain": {},
}
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


def _outcome(encode: Any, value: Any) -> str | type[BaseException]:
    try:
        return str(encode(value))
    except (TypeError, ValueError) as exc:
        return type(exc)


@pytest.mark.parametrize("name", OPTIONS)
@given(value=values)
def test_the_same_text_or_error_as_json_dumps(name: str, value: Any) -> None:
    def dumps(v: Any) -> str:
        return json.dumps(v, **OPTIONS[name])

    assert _outcome(getattr(jsontext, name), value) == _outcome(dumps, value)


@pytest.mark.parametrize("name", OPTIONS)
@pytest.mark.parametrize(
    "value",
    ["é\u2028", {1: "int key", 2.5: "float key", None: 0, False: 1}, 10**30, float("nan"), {1, 2}],
)
def test_keys_big_numbers_nan_and_what_is_not_json(name: str, value: Any) -> None:
    def dumps(v: Any) -> str:
        return json.dumps(v, **OPTIONS[name])

    assert _outcome(getattr(jsontext, name), value) == _outcome(dumps, value)
