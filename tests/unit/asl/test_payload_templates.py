"""Parameters and ResultSelector templates."""

from __future__ import annotations

from typing import Any

import pytest

from stepd.asl.intrinsics import seeded_random
from stepd.asl.payload import render
from stepd.errors import StatesRuntimeError

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
        pytest.param(
            {"x.$": 5}, "The value of the field 'x.$' must be a path or intrinsic", id="non-string"
        ),
        pytest.param(
            {"x": 1, "x.$": "$.room"},
            "The field 'x' is given more than once",
            id="duplicate-after-suffix",
        ),
    ],
)
def test_render_failures_are_runtime_errors(template: Any, cause: str) -> None:
    """A failing `.$` field is States.Runtime with AWS's cause text."""
    with pytest.raises(StatesRuntimeError) as raised:
        render(template, {"room": "r1"}, {"Execution": {"Name": "room-42"}}, seeded_random("t"))
    assert cause == raised.value.message
