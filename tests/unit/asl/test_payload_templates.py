"""Parameters and ResultSelector templates."""

from __future__ import annotations

from typing import Any

import pytest

from stepd.asl.intrinsics import seeded_random
from stepd.asl.payload import render, repeated_keys
from stepd.errors import ParseError, StatesRuntimeError

DATA = {"room": "r1", "start": "2024-08-18T17:33:00Z", "tags": [{"k": "a"}, {"k": "b"}]}
CONTEXT = {"Execution": {"Name": "room-42", "Id": "arn:x"}, "State": {"RetryCount": 0}}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param(
            {"static": 1, "nested": {"x": [True]}},
            {"static": 1, "nested": {"x": [True]}},
            id="static-copied",
        ),
        pytest.param({"room.$": "$.room"}, {"room": "r1"}, id="path"),
        pytest.param({"all.$": "$"}, {"all": DATA}, id="root-path"),
        pytest.param({"keys.$": "$.tags[*].k"}, {"keys": ["a", "b"]}, id="wildcard-path"),
        pytest.param({"name.$": "$$.Execution.Name"}, {"name": "room-42"}, id="context-path"),
        pytest.param({"ctx.$": "$$"}, {"ctx": CONTEXT}, id="whole-context"),
        pytest.param(
            {"msg.$": "States.Format('room {} at {}', $.room, $.start)"},
            {"msg": "room r1 at 2024-08-18T17:33:00Z"},
            id="intrinsic",
        ),
        pytest.param(
            {"outer": {"inner.$": "$.room"}}, {"outer": {"inner": "r1"}}, id="nested-object"
        ),
        pytest.param(
            {"list": [{"r.$": "$.room"}, "plain", ["deep", {"n.$": "$$.State.RetryCount"}]]},
            {"list": [{"r": "r1"}, "plain", ["deep", {"n": 0}]]},
            id="nested-arrays",
        ),
        pytest.param({"literal": "$.room"}, {"literal": "$.room"}, id="no-suffix-is-literal"),
        pytest.param("plain", "plain", id="scalar-template"),
    ],
)
def test_render(template: Any, expected: Any) -> None:
    """A template copies static values and evaluates `.$` keys."""
    assert expected == render(template, DATA, CONTEXT, seeded_random("t"))


@pytest.mark.parametrize(
    ("template", "cause"),
    [
        pytest.param(
            {"JobName.$": "$.JobName"},
            "The JSONPath '$.JobName' specified for the field 'JobName.$' could not be found "
            'in the input \'{"room":"r1"}\'',
            id="missing-path",
        ),
        pytest.param(
            {"x.$": "$$.Nope"},
            "The JSONPath '$$.Nope' specified for the field 'x.$' could not be found in the "
            'input \'{"Execution":{"Name":"room-42"}}\'',
            id="missing-context-path",
        ),
    ],
)
def test_render_failures_are_runtime_errors(template: Any, cause: str) -> None:
    """A failing `.$` field is States.Runtime with AWS's cause text."""
    with pytest.raises(StatesRuntimeError) as raised:
        render(template, {"room": "r1"}, {"Execution": {"Name": "room-42"}}, seeded_random("t"))
    assert cause == raised.value.message


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        pytest.param({"x.$": 5}, "5 is not a path or an intrinsic function call", id="non-string"),
        pytest.param(
            {"x": 1, "x.$": "$.room"},
            "The field 'x' is given more than once",
            id="duplicate-after-suffix",
        ),
        pytest.param(
            {"x.$": "$.room["}, "Invalid path '$.room[': missing ']'", id="malformed-path"
        ),
        pytest.param(
            {"outer": [{"x.$": "States.Nope()"}]},
            "Invalid intrinsic function 'States.Nope()': unknown function States.Nope",
            id="unknown-intrinsic-deep-inside",
        ),
    ],
)
def test_render_refuses_what_the_parsers_refuse(template: Any, problem: str) -> None:
    """A template `stepd check` refuses raises ParseError, whatever the data."""
    with pytest.raises(ParseError) as raised:
        render(template, {"room": "r1"}, {}, seeded_random("t"))
    assert problem == raised.value.problem


@pytest.mark.parametrize(
    ("template", "repeated"),
    [
        pytest.param({"a": 1, "b.$": "$"}, [], id="distinct"),
        pytest.param({"a": 1, "a.$": "$"}, ["a.$"], id="plain-then-dynamic"),
        pytest.param({"a.$": "$", "a": 1}, ["a"], id="dynamic-then-plain"),
    ],
)
def test_repeated_keys(template: dict[str, Any], repeated: list[str]) -> None:
    """repeated_keys names each key whose field an earlier key already fills."""
    assert repeated == repeated_keys(template)
