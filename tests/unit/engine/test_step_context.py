"""The context object a step hands the interpreter: parsed and made only when read, and then
the same as one made at once."""

from __future__ import annotations

import dataclasses
import json

from stepd.asl.decisions import Context, JsonText
from stepd.engine.steps import Step, utc

INPUT = {"class": "c1", "at": [1, 2]}
VARIABLES = {"room": "A"}


def _step() -> Step:
    step = Step(
        definition={"StartAt": "S", "States": {"S": {"Type": "Pass", "End": True}}},
        machine="m",
        name="e1",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:m:e1",
        machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m",
        execution_input=json.dumps(INPUT),
        start_date=1_800_000_000.25,
        now=1_800_000_060.5,
        random=lambda: 0.5,
        redrive_count=2,
    )
    step.state = "S"
    step.attempt = 3
    step.entered_at = 1_800_000_030.125
    step.variables = json.dumps(VARIABLES)
    step.token = "t0k"
    return step


def test_every_field_reads_as_a_context_made_at_once() -> None:
    ctx = _step().context()
    expected = Context(
        execution_id="arn:aws:states:us-east-1:123456789012:execution:m:e1",
        execution_name="e1",
        execution_input=JsonText(json.dumps(INPUT)),  # parsed when a path reads it
        execution_start_time=utc(1_800_000_000.25),
        state_machine_id="arn:aws:states:us-east-1:123456789012:stateMachine:m",
        state_machine_name="m",
        state_name="S",
        state_entered_time=utc(1_800_000_030.125),
        retry_count=3,
        role_arn="arn:aws:iam::123456789012:role/stepd",
        redrive_count=2,
        task_token="t0k",
        variables=VARIABLES,
    )
    for field in dataclasses.fields(Context):
        assert getattr(ctx, field.name) == getattr(expected, field.name), field.name
    assert ctx.as_json() == expected.as_json()


def test_what_it_is_made_from_is_taken_when_it_is_made() -> None:
    """A step that moves on after making its context does not change that context."""
    step = _step()
    ctx = step.context()
    step.entered_at = 0.0
    step.variables = None
    assert (ctx.state_entered_time, ctx.variables) == (utc(1_800_000_030.125), VARIABLES)
