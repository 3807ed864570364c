"""Task states: the call to make, and what happens with its result."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.asl.asl_support import NOW, context, machine

from stepd.asl.decisions import CallTask, Caught, Fail, GoTo, Succeed
from stepd.asl.interpreter import enter, task_succeeded

ARN = "arn:aws:lambda:us-east-1:123456789012:function:classroom-dev-startRecording"
INPUT = {"room": "r1", "start": "2024-08-18T17:33:00Z", "limits": {"timeout": 30}}


def task(**fields: Any) -> dict[str, Any]:
    """A definition with one Task state T (Next: N) holding `fields`."""
    state = {"Type": "Task", "Resource": ARN, "Next": "N", **fields}
    return machine("T", state, N={"Type": "Succeed"}, Handler={"Type": "Pass", "End": True})


def call(definition: dict[str, Any], state_input: Any = INPUT) -> Any:
    """enter state T."""
    return enter(definition, "T", state_input, context("T"), NOW)


def succeeded(definition: dict[str, Any], result: Any, state_input: Any = INPUT) -> Any:
    """task_succeeded for state T."""
    return task_succeeded(definition, "T", state_input, result, context("T"))


@pytest.mark.parametrize(
    ("fields", "expected_payload"),
    [
        pytest.param({}, INPUT, id="input-is-payload"),
        pytest.param({"InputPath": "$.limits"}, {"timeout": 30}, id="input-path"),
        pytest.param({"InputPath": None}, {}, id="null-input-path"),
        pytest.param(
            {"Parameters": {"FunctionName": "f", "Payload.$": "$"}},
            {"FunctionName": "f", "Payload": INPUT},
            id="parameters-whole-input",
        ),
        pytest.param(
            {
                "Parameters": {
                    "room.$": "$.room",
                    "execution.$": "$$.Execution.Name",
                    "when.$": "States.Format('at {}', $.start)",
                    "nested": {"list": [{"t.$": "$.limits.timeout"}]},
                }
            },
            {
                "room": "r1",
                "execution": "room-42",
                "when": "at 2024-08-18T17:33:00Z",
                "nested": {"list": [{"t": 30}]},
            },
            id="parameters-paths-context-intrinsics-nesting",
        ),
        pytest.param(
            {"InputPath": "$.limits", "Parameters": {"t.$": "$.timeout"}},
            {"t": 30},
            id="parameters-after-input-path",
        ),
    ],
)
def test_enter_task_asks_for_the_call(fields: dict[str, Any], expected_payload: Any) -> None:
    """Entering a Task gives the resource and the payload after InputPath and Parameters."""
    expected = CallTask(resource=ARN, payload=expected_payload)
    assert expected == call(task(**fields))


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param({"Fn::GetAtt": ["startRecording", "Arn"]}, id="get-att"),
        pytest.param({"Ref": "StartRecordingLambdaFunction"}, id="ref"),
    ],
)
def test_cloudformation_resource_is_passed_through(resource: dict[str, Any]) -> None:
    """A CloudFormation Resource reaches the engine unchanged."""
    assert resource == call(task(Resource=resource)).resource


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, None, id="default"),
        pytest.param({"TimeoutSeconds": 10}, 10.0, id="timeout-seconds"),
        pytest.param({"TimeoutSecondsPath": "$.limits.timeout"}, 30.0, id="timeout-seconds-path"),
    ],
)
def test_task_timeout(fields: dict[str, Any], expected: float | None) -> None:
    """TimeoutSeconds or TimeoutSecondsPath sets the call's timeout."""
    assert expected == call(task(**fields)).timeout_seconds


@pytest.mark.parametrize(
    ("fields", "cause"),
    [
        pytest.param(
            {"TimeoutSecondsPath": "$.X"},
            "Invalid path '$.X' : No results for path: $['X']",
            id="missing",
        ),
        pytest.param(
            {"TimeoutSecondsPath": "$.room"},
            "The TimeoutSecondsPath parameter references an invalid value: $.room == r1",
            id="string",
        ),
        pytest.param(
            {"TimeoutSecondsPath": "$$.State.RetryCount"},
            "The TimeoutSecondsPath parameter references an invalid value: "
            "$$.State.RetryCount == 0",
            id="context-path-read-from-context",
        ),
        pytest.param(
            {"TimeoutSecondsPath": "$.limits[*]"},
            "The definition is invalid: "
            "Invalid path '$.limits[*]': a reference path cannot hold a '*' wildcard",
            id="wildcard",
        ),
        pytest.param(
            {"TimeoutSeconds": 0}, "TimeoutSeconds must be a positive integer: 0", id="zero"
        ),
        pytest.param(
            {"Parameters": {"x.$": "$.nope"}},
            "The JSONPath '$.nope' specified for the field 'x.$' could not be found in "
            'the input \'{"room":"r1"}\'',
            id="parameters-path",
        ),
        pytest.param({"Resource": None}, "The Task state has no Resource", id="no-resource"),
    ],
)
def test_enter_task_failures_are_runtime(fields: dict[str, Any], cause: str) -> None:
    """A Task that cannot build its call fails with States.Runtime."""
    assert Fail(error="States.Runtime", cause=cause) == call(task(**fields), {"room": "r1"})


@pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
@pytest.mark.parametrize("seconds", [100_000_000, 10**400])
def test_timeouts_beyond_aws_bound_fail_the_state(language: str, seconds: int) -> None:
    """A timeout or heartbeat over AWS's 99,999,999 seconds (one too large for a float, too)
    fails the state with an error naming the field, not an unexpected exception."""
    for name in ("TimeoutSeconds", "HeartbeatSeconds"):
        decision = call(task(**{name: seconds, "QueryLanguage": language}))
        assert isinstance(decision, Fail)
        assert name in (decision.cause or "")
    decision = call(task(TimeoutSecondsPath="$.limits.timeout"), {"limits": {"timeout": seconds}})
    assert isinstance(decision, Fail)
    assert "TimeoutSecondsPath" in (decision.cause or "")


RESULT = {"recording": "on", "id": 7}


@pytest.mark.parametrize(
    ("fields", "expected_output"),
    [
        pytest.param({}, RESULT, id="default-result-path-replaces"),
        pytest.param({"ResultPath": "$"}, RESULT, id="root-result-path-replaces"),
        pytest.param({"ResultPath": None}, INPUT, id="null-result-path-keeps-input"),
        pytest.param(
            {"ResultPath": "$.results.start"},
            {**INPUT, "results": {"start": RESULT}},
            id="result-path-creates-objects",
        ),
        pytest.param(
            {"ResultSelector": {"rid.$": "$.id"}, "ResultPath": "$.r"},
            {**INPUT, "r": {"rid": 7}},
            id="result-selector",
        ),
        pytest.param(
            {"ResultSelector": {"name.$": "$$.State.Name", "fixed": 1}},
            {"name": "T", "fixed": 1},
            id="result-selector-context",
        ),
        pytest.param({"ResultPath": "$.r", "OutputPath": "$.r.id"}, 7, id="output-path"),
        pytest.param({"OutputPath": None}, {}, id="null-output-path"),
        pytest.param(
            {"InputPath": "$.limits", "ResultPath": "$.r"},
            {**INPUT, "r": RESULT},
            id="result-path-applies-to-raw-input",
        ),
    ],
)
def test_task_succeeded_output(fields: dict[str, Any], expected_output: Any) -> None:
    """ResultSelector, ResultPath and OutputPath shape the output passed to Next."""
    assert GoTo(next_state="N", output=expected_output) == succeeded(task(**fields), RESULT)


def test_task_succeeded_with_end_succeeds() -> None:
    """A Task with End succeeds the execution with its output."""
    definition = machine("T", {"Type": "Task", "Resource": ARN, "End": True, "ResultPath": None})
    assert Succeed(output=INPUT) == succeeded(definition, RESULT)


def test_result_selector_missing_path_fails() -> None:
    """A ResultSelector path that matches nothing fails with States.Runtime."""
    expected = Fail(
        error="States.Runtime",
        cause="The JSONPath '$.nope' specified for the field 'x.$' could not be found in the "
        'input \'{"recording":"on","id":7}\'',
    )
    assert expected == succeeded(task(ResultSelector={"x.$": "$.nope"}), RESULT)


def test_output_path_missing_fails() -> None:
    """An OutputPath that matches nothing fails with States.Runtime."""
    expected = Fail(
        error="States.Runtime", cause="Invalid path '$.nope' : No results for path: $['nope']"
    )
    assert expected == succeeded(task(OutputPath="$.nope"), RESULT)


def test_result_path_match_failure_is_caught() -> None:
    """A ResultPath into a non-object input goes to a matching catcher."""
    definition = task(
        ResultPath="$.r",
        Catch=[{"ErrorEquals": ["States.ResultPathMatchFailure"], "Next": "Handler"}],
    )
    cause = 'Unable to apply ReferencePath $.r to input "text"'
    expected = Caught(
        next_state="Handler",
        output={"Error": "States.ResultPathMatchFailure", "Cause": cause},
        error="States.ResultPathMatchFailure",
        cause=cause,
    )
    assert expected == succeeded(definition, RESULT, "text")


def test_result_path_match_failure_without_catcher_fails() -> None:
    """A ResultPath failure with no catcher fails, and is never retried."""
    definition = task(ResultPath="$.r", Retry=[{"ErrorEquals": ["States.ALL"]}])
    expected = Fail(
        error="States.ResultPathMatchFailure",
        cause="Unable to apply ReferencePath $.r to input [1]",
    )
    assert expected == succeeded(definition, RESULT, [1])


def test_parameters_draw_the_same_uuid_on_reevaluation() -> None:
    """States.UUID in Parameters is stable for the same state visit."""
    definition = task(Parameters={"id.$": "States.UUID()"})
    assert call(definition).payload == call(definition).payload
