"""A step of an execution: data limits, Fail states' errors and the role in `$$`.

These go through `stepd.engine.steps.Step`, which carries out the interpreter's decisions as
the daemon does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepd.engine.steps import MAX_STATE_DATA_BYTES, Step

T0 = 1_800_000_000.0
MACHINE_ARN = "arn:aws:states:us-east-1:210987654321:stateMachine:m"
BIG = "a" * MAX_STATE_DATA_BYTES
LIMIT_CAUSE = (
    "The state/task 'S' returned a result with a size exceeding the maximum number of bytes "
    "service limit."
)
RUNTIME_PREFIX = "An error occurred while executing the state 'S' (entered at the event id #2). "


def run(state: dict[str, Any], state_input: Any = None) -> Step:
    """Start a one-state machine and run it as far as it goes at once."""
    step = Step(
        definition={"StartAt": "S", "States": {"S": state}},
        machine="m",
        name="n",
        execution_arn="arn:aws:states:us-east-1:210987654321:execution:m:n",
        machine_arn=MACHINE_ARN,
        execution_input=json.dumps({} if state_input is None else state_input),
        start_date=T0,
        now=T0,
        random=lambda: 0.5,
    )
    step.begin("arn:aws:iam::210987654321:role/stepd")
    step.run()
    return step


@pytest.mark.parametrize(
    ("state", "state_input", "expected"),
    [
        pytest.param(
            {"Type": "Pass", "Result": {"Arg1": BIG}, "End": True},
            None,
            ("FAILED", "States.DataLimitExceeded", LIMIT_CAUSE),
            id="pass-result-over-256-KiB",
        ),
        pytest.param(
            {"Type": "Pass", "Parameters": {"a.$": "$.x", "b.$": "$.x"}, "End": True},
            {"x": "é" * (MAX_STATE_DATA_BYTES // 4)},
            ("FAILED", "States.DataLimitExceeded", LIMIT_CAUSE),
            id="counted-in-utf-8-bytes",
        ),
        pytest.param(
            {"Type": "Pass", "Result": "a" * (MAX_STATE_DATA_BYTES - 2), "End": True},
            None,
            ("SUCCEEDED", None, None),
            id="exactly-256-KiB-passes",
        ),
        pytest.param(
            {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": True},
            {"x": BIG},
            ("FAILED", "States.DataLimitExceeded", LIMIT_CAUSE),
            id="task-input-over-256-KiB",
        ),
        pytest.param({"Type": "Fail"}, None, ("FAILED", None, None), id="fail-without-error"),
        pytest.param(
            {"Type": "Fail", "Error": "States.Runtime", "Cause": "mine"},
            None,
            ("FAILED", "States.Runtime", "mine"),
            id="fail-naming-states-runtime-keeps-its-cause",
        ),
        pytest.param(
            {"Type": "Fail", "ErrorPath": "$.nope"},
            {"a": 1},
            (
                "FAILED",
                "States.Runtime",
                RUNTIME_PREFIX + "The JSONPath '$.nope' specified for the field 'ErrorPath' "
                "could not be found in the input '{\"a\":1}'",
            ),
            id="fail-error-path-missing",
        ),
        pytest.param(
            {"Type": "Pass", "Parameters": {"r.$": "$$.Execution.RoleArn"}, "End": True},
            None,
            ("SUCCEEDED", None, None),
            id="role-arn-readable",
        ),
    ],
)
def test_step_outcome(state: dict[str, Any], state_input: Any, expected: tuple[Any, ...]) -> None:
    """The execution ends with AWS's status, error and cause."""
    step = run(state, state_input)
    assert expected == (step.status, step.error, step.cause)


def test_the_role_arn_names_the_account_of_the_machine() -> None:
    """`$$.Execution.RoleArn` is the role of the machine's account."""
    step = run({"Type": "Pass", "Parameters": {"r.$": "$$.Execution.RoleArn"}, "End": True})
    assert json.loads(step.output or "") == {"r": "arn:aws:iam::210987654321:role/stepd"}
