"""Pass, Choice, Succeed and Fail states, and what enter does with unknown states."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.asl.asl_support import NOW, context, machine

from stepd.asl.decisions import Fail, GoTo, Succeed
from stepd.asl.interpreter import NO_CHOICE_MATCHED, enter, start_state
from stepd.errors import DefinitionError

INPUT = {"a": 1, "b": {"c": 2}}


def run(state: dict[str, Any], state_input: Any = INPUT) -> Any:
    """enter a definition made of `state` (named S) with `state_input`."""
    return enter(machine("S", state), "S", state_input, context("S"), NOW)


def test_start_state_is_start_at() -> None:
    """start_state returns StartAt."""
    expected = "First"
    assert expected == start_state({"StartAt": "First", "States": {}})


def test_start_state_without_start_at_raises() -> None:
    """A definition without StartAt is a DefinitionError."""
    with pytest.raises(DefinitionError):
        start_state({"States": {}})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, INPUT, id="passes-input-through"),
        pytest.param({"Result": {"r": 1}}, {"r": 1}, id="result-replaces"),
        pytest.param(
            {"Result": "x", "ResultPath": "$.r"}, {**INPUT, "r": "x"}, id="result-at-result-path"
        ),
        pytest.param({"Result": "x", "ResultPath": None}, INPUT, id="null-result-path-keeps-input"),
        pytest.param({"InputPath": "$.b"}, {"c": 2}, id="input-path"),
        pytest.param({"InputPath": None}, {}, id="null-input-path"),
        pytest.param(
            {"InputPath": "$.b", "ResultPath": "$.copy"},
            {**INPUT, "copy": {"c": 2}},
            id="result-path-applies-to-raw-input",
        ),
        pytest.param({"OutputPath": "$.b.c"}, 2, id="output-path"),
        pytest.param({"OutputPath": None}, {}, id="null-output-path"),
        pytest.param({"InputPath": "$$.State.Name"}, "S", id="context-input-path"),
        pytest.param({"OutputPath": "$$.State.RetryCount"}, 0, id="context-output-path"),
        pytest.param({"Parameters": {"x.$": "$.a", "s": "k"}}, {"x": 1, "s": "k"}, id="parameters"),
        pytest.param(
            {"Parameters": {"name.$": "$$.State.Name"}, "ResultPath": "$.p"},
            {**INPUT, "p": {"name": "S"}},
            id="parameters-context",
        ),
        pytest.param(
            {"Parameters": {"n.$": "States.MathAdd($.a, 41)"}}, {"n": 42}, id="parameters-intrinsic"
        ),
        pytest.param(
            {"InputPath": "$.b", "Parameters": {"v.$": "$.c"}},
            {"v": 2},
            id="parameters-read-effective-input",
        ),
        pytest.param({"Result": 1, "Parameters": {"x": 2}}, 1, id="result-wins-over-parameters"),
    ],
)
def test_pass(fields: dict[str, Any], expected: Any) -> None:
    """Pass applies InputPath, Parameters, Result, ResultPath and OutputPath."""
    assert GoTo(next_state="N", output=expected) == run({"Type": "Pass", "Next": "N", **fields})


def test_pass_end_succeeds() -> None:
    """A Pass state with End succeeds the execution with its output."""
    assert Succeed(output=INPUT) == run({"Type": "Pass", "End": True})


@pytest.mark.parametrize(
    ("fields", "state_input", "cause"),
    [
        pytest.param(
            {"InputPath": "$.nope"},
            INPUT,
            "Invalid path '$.nope' : No results for path: $['nope']",
            id="input-path",
        ),
        pytest.param(
            {"OutputPath": "$.nope"},
            INPUT,
            "Invalid path '$.nope' : No results for path: $['nope']",
            id="output-path",
        ),
        pytest.param(
            {"Parameters": {"x.$": "$.nope"}},
            {"a": 1},
            "The JSONPath '$.nope' specified for the field 'x.$' could not be found in "
            "the input '{\"a\":1}'",
            id="parameters",
        ),
        pytest.param(
            {"Parameters": {"x.$": "States.ArrayLength($.a)"}},
            {"a": 1},
            "States.ArrayLength: the first argument must be an array, got 1",
            id="intrinsic",
        ),
    ],
)
def test_pass_path_failures_are_runtime(
    fields: dict[str, Any], state_input: Any, cause: str
) -> None:
    """A path or intrinsic failure in a Pass state fails with States.Runtime."""
    expected = Fail(error="States.Runtime", cause=cause)
    assert expected == run({"Type": "Pass", "Next": "N", **fields}, state_input)


def test_pass_result_path_into_non_object_fails() -> None:
    """A Pass ResultPath into a non-object input fails with ResultPathMatchFailure."""
    expected = Fail(
        error="States.ResultPathMatchFailure",
        cause='Unable to apply ReferencePath $.r to input "text"',
    )
    assert expected == run({"Type": "Pass", "Result": 1, "ResultPath": "$.r", "End": True}, "text")


CHOICE = {
    "Type": "Choice",
    "Choices": [
        {"Variable": "$.n", "NumericLessThan": 0, "Next": "Negative"},
        {"Variable": "$.n", "NumericLessThan": 10, "Next": "Small"},
        {"Variable": "$.n", "NumericLessThan": 100, "Next": "Medium"},
    ],
    "Default": "Large",
}


@pytest.mark.parametrize(
    ("n", "next_state"),
    [
        pytest.param(-1, "Negative", id="first-rule"),
        pytest.param(5, "Small", id="first-match-wins"),
        pytest.param(50, "Medium", id="third-rule"),
        pytest.param(500, "Large", id="default"),
    ],
)
def test_choice_goes_to_first_match_or_default(n: int, next_state: str) -> None:
    """Choice takes the first matching rule, else Default, and passes its input on."""
    assert GoTo(next_state=next_state, output={"n": n}) == run(CHOICE, {"n": n})


def test_choice_without_match_or_default_fails() -> None:
    """Choice with no matching rule and no Default fails with States.Runtime."""
    state = {k: v for k, v in CHOICE.items() if k != "Default"}
    expected = Fail(error="States.Runtime", cause=NO_CHOICE_MATCHED)
    assert expected == run(state, {"n": 500})


def test_choice_missing_variable_fails() -> None:
    """Choice on a missing Variable fails with States.Runtime and AWS's cause."""
    expected = Fail(
        error="States.Runtime",
        cause="Invalid path '$.n': The choice state's condition path references an invalid value.",
    )
    assert expected == run(CHOICE, {"m": 1})


def test_choice_applies_input_and_output_path() -> None:
    """Choice evaluates rules on the InputPath result and applies OutputPath to it."""
    state = {**CHOICE, "InputPath": "$.inner", "OutputPath": "$.n"}
    assert GoTo(next_state="Small", output=5) == run(state, {"inner": {"n": 5}})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, INPUT, id="input"),
        pytest.param({"InputPath": "$.b"}, {"c": 2}, id="input-path"),
        pytest.param({"OutputPath": "$.a"}, 1, id="output-path"),
    ],
)
def test_succeed(fields: dict[str, Any], expected: Any) -> None:
    """Succeed ends the execution with its input, after InputPath and OutputPath."""
    assert Succeed(output=expected) == run({"Type": "Succeed", **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"Error": "Oops", "Cause": "Because"},
            Fail(error="Oops", cause="Because"),
            id="error-and-cause",
        ),
        pytest.param({"Error": "Oops"}, Fail(error="Oops"), id="error-only"),
        pytest.param({}, Fail(error=""), id="neither"),
        pytest.param(
            {"ErrorPath": "$.e", "CausePath": "$.c"}, Fail(error="E1", cause="C1"), id="paths"
        ),
        pytest.param(
            {"ErrorPath": "$$.State.Name", "Cause": "x"},
            Fail(error="S", cause="x"),
            id="context-path",
        ),
        pytest.param(
            {"Error": "E", "CausePath": "States.Format('code {}', $.code)"},
            Fail(error="E", cause="code 7"),
            id="intrinsic",
        ),
        pytest.param(
            {"ErrorPath": "$.missing"},
            Fail(
                error="States.Runtime",
                cause="The JSONPath '$.missing' specified for the field 'ErrorPath' could not "
                'be found in the input \'{"e":"E1","c":"C1","code":7}\'',
            ),
            id="missing-error-path",
        ),
        pytest.param(
            {"Error": "E", "CausePath": "$.nope"},
            Fail(
                error="States.Runtime",
                cause="The JSONPath '$.nope' specified for the field 'CausePath' could not "
                'be found in the input \'{"e":"E1","c":"C1","code":7}\'',
            ),
            id="missing-cause-path",
        ),
        pytest.param(
            {"ErrorPath": "$.code"},
            Fail(error="States.Runtime", cause="The ErrorPath field must be a string, got 7"),
            id="non-string",
        ),
    ],
)
def test_fail(fields: dict[str, Any], expected: Fail) -> None:
    """Fail ends the execution with Error/Cause or the values at ErrorPath/CausePath."""
    assert expected == run({"Type": "Fail", **fields}, {"e": "E1", "c": "C1", "code": 7})


@pytest.mark.parametrize(
    ("definition", "name", "cause"),
    [
        pytest.param(
            machine("S", {"Type": "Parallel", "Branches": [], "End": True}),
            "S",
            "Branches must be a non-empty array of state machines",
            id="parallel-without-branches",
        ),
        pytest.param(
            machine("S", {"Type": "Map", "End": True}),
            "S",
            "The Map state has neither ItemProcessor nor Iterator",
            id="map-without-processor",
        ),
        pytest.param(
            machine("S", {"Type": "Sleep"}),
            "S",
            "The state type 'Sleep' is unknown",
            id="unknown-type",
        ),
        pytest.param(
            machine("S", {"Type": "Pass", "End": True}),
            "T",
            "The state 'T' does not exist in the definition",
            id="unknown-state",
        ),
        pytest.param(
            machine("S", {"Type": "Pass"}),
            "S",
            "The state has neither Next nor End",
            id="no-transition",
        ),
    ],
)
def test_states_that_cannot_run_fail(definition: dict[str, Any], name: str, cause: str) -> None:
    """A state stepd cannot run fails with States.Runtime and says why."""
    expected = Fail(error="States.Runtime", cause=cause)
    assert expected == enter(definition, name, {}, context(name), NOW)
