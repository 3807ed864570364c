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


finite = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(value=finite)
def test_stored_text_reads_back_as_compact_ascii_text_does(value: Any) -> None:
    """What stepd stores and reads back itself (event details, a pending step's record) is
    the same value as before, big integers and lone surrogates included."""
    stored = _outcome(jsontext.stored, value)
    assert not isinstance(stored, type)
    assert json.loads(stored) == json.loads(jsontext.compact_ascii(value))


@pytest.mark.parametrize(
    "value",
    [{1: "int key", None: 0}, 10**30, "\ud800", {1, 2}, object(), b"bytes"],
)
def test_stored_takes_and_refuses_what_compact_ascii_does(value: Any) -> None:
    """Keys that are not strings, integers beyond 64 bits and lone surrogates are written as
    `compact_ascii` writes them; what is not JSON is refused with its TypeError."""
    assert _outcome(jsontext.stored, value) == _outcome(jsontext.compact_ascii, value)


def test_a_log_line_renders_what_json_cannot_with_its_default() -> None:
    """A log line with a value JSON has no type for holds `default`'s answer for it, as
    json.dumps(value, default=default) gives it; text beyond ASCII is kept as it is."""

    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    line = {"event": "x", "thing": Thing(), "name": "Zoë", "n": 1.5}
    assert json.loads(jsontext.line(line, repr)) == json.loads(json.dumps(line, default=repr))
    assert "Zoë" in jsontext.line(line, repr)
    big = {**line, "big": 10**30}  # beyond orjson's integers: the json module's line
    assert jsontext.line(big, repr) == json.dumps(big, default=repr)


@pytest.mark.parametrize(
    "value",
    [{"k": "\ud800"}, ["a\udfffb", "\U0001f600"], {"\udc00": {"x": ["\ud800", 1]}}],
    ids=["value", "in-a-list", "key"],
)
def test_a_lone_surrogate_is_written_escaped_and_reads_back_the_same(value):
    """compact and strict write text a store can hold as UTF-8 (the surrogate escaped) that
    parses back into the same value; texts without one are json.dumps's."""
    for encode in (jsontext.compact, jsontext.strict):
        text = encode(value)
        text.encode("utf-8")
        assert json.loads(text) == value
    assert jsontext.unpaired_surrogate(value)
    assert jsontext.may_hold_surrogate(jsontext.compact(value))


def test_a_surrogate_pair_is_one_character_and_not_unpaired():
    value = json.loads('{"k": "\\ud83d\\ude00"}')
    assert value == {"k": "\U0001f600"}
    assert not jsontext.unpaired_surrogate(value)
    assert jsontext.compact(value) == '{"k":"\U0001f600"}'
