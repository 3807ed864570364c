"""The `$$` context object: every field AWS gives a state, read through paths."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.asl.asl_support import EXECUTION_ARN, MACHINE_ARN, context

from stepd.asl import jsonata, paths, payload
from stepd.asl.decisions import JsonText
from stepd.asl.intrinsics import seeded_random

ROLE = "arn:aws:iam::123456789012:role/stepd"
CTX = replace(context("Check", {"room": 42}, retry_count=2), role_arn=ROLE)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("$$.Execution.Id", EXECUTION_ARN, id="execution-id"),
        pytest.param("$$.Execution.Name", "room-42", id="execution-name"),
        pytest.param("$$.Execution.Input", {"room": 42}, id="execution-input"),
        pytest.param("$$.Execution.Input.room", 42, id="execution-input-member"),
        pytest.param("$$.Execution.StartTime", "2024-08-18T11:00:00.192Z", id="start-time"),
        pytest.param("$$.Execution.RoleArn", ROLE, id="role-arn"),
        pytest.param("$$.Execution.RedriveCount", 0, id="redrive-count-until-redrive"),
        pytest.param("$$.State.Name", "Check", id="state-name"),
        pytest.param("$$.State.EnteredTime", "2024-08-18T12:00:00.500Z", id="entered-time"),
        pytest.param("$$.State.RetryCount", 2, id="retry-count"),
        pytest.param("$$.StateMachine.Id", MACHINE_ARN, id="machine-id"),
        pytest.param("$$.StateMachine.Name", "classroom", id="machine-name"),
    ],
)
def test_context_fields(path: str, expected: Any) -> None:
    """A `$$` path reads the field AWS documents for the context object."""
    assert expected == paths.resolve(path, {}, CTX.as_json())


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param(None, None, id="no-task-without-a-token"),
        pytest.param("tok-1", {"Token": "tok-1"}, id="task-token-when-waiting-for-one"),
    ],
)
def test_task_token_only_for_callback_tasks(token: str | None, expected: Any) -> None:
    """`$$.Task` exists only while a task waits for its token, as on AWS."""
    assert expected == replace(CTX, task_token=token).as_json().get("Task")


TEXT_CTX = replace(CTX, execution_input=JsonText('{"room": 42}'))


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param({"r.$": "$$.Execution.Input.room"}, {"r": 42}, id="a-member"),
        pytest.param({"i.$": "$$.Execution.Input"}, {"i": {"room": 42}}, id="the-input"),
        pytest.param(
            {"f.$": "States.Format('{}', $$.Execution.Input.room)"}, {"f": "42"}, id="intrinsic"
        ),
        pytest.param({"n.$": "$$.Execution.Name"}, {"n": "room-42"}, id="another-field"),
    ],
)
def test_an_input_kept_as_text_reads_as_its_value(template: Any, expected: Any) -> None:
    """The engine hands the execution's input over as text, parsed only when a path reads it:
    paths, intrinsics and the whole context object see the value."""
    assert payload.render(template, {}, TEXT_CTX.as_json(), seeded_random("s")) == expected
    whole = paths.resolve("$$", {}, TEXT_CTX.as_json())
    assert whole["Execution"]["Input"] == {"room": 42}


def test_an_input_kept_as_text_reads_as_its_value_in_jsonata() -> None:
    scope = jsonata.Scope(
        states={"input": {}, "context": TEXT_CTX.as_json()},
        variables={},
        now=datetime(2024, 8, 18, tzinfo=UTC),
        random=seeded_random("s"),
    )
    value = jsonata.render("{% $states.context.Execution.Input.room %}", "Output", scope)
    assert value == 42
