"""Updating a running execution: a class that moved keeps its execution and its name.

An update replaces the execution's data (the input of the state it is at) with a new value,
or with `merge` sets the given fields of it and keeps the others; the execution's input (what
`$$.Execution.Input` and DescribeExecution show) changes the same way. Where the execution
waits in a Wait state, the Wait is worked out again with the new data as if it had been
entered with it, at the instant it was entered: a `TimestampPath`, `SecondsPath` or JSONata
`Timestamp`/`Seconds` that reads a changed field moves the due instant, earlier or later. A
Task state already entered keeps the request it made (a call in flight is not touched); the
new data is what its result is merged into and what later states read. The update is one
transition with an `ExecutionUpdated` event (old and new input, old and new due instant, who
asked), so it is as durable as any step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from stepd.asl import interpreter
from stepd.asl.decisions import GoTo, WaitUntil
from stepd.engine.history import dumps
from stepd.engine.inputs import InputSchema, parse_input
from stepd.engine.steps import Step, utc
from stepd.errors import ExecutionNotRunning, InvalidExecutionInput
from stepd.store.records import PHASE_WAIT, RUNNING, Transition, WaitThen

EVENT_TYPE = "ExecutionUpdated"


def updated_input(current: str, given: Any, *, merge: bool) -> Any:
    """The execution's new input: `given`, or with `merge` the current one with the fields of
    `given` set (both must be JSON objects)."""
    if not merge:
        return given
    if not isinstance(given, dict):
        raise InvalidExecutionInput("Invalid execution input: --merge needs a JSON object")
    before = json.loads(current)
    if not isinstance(before, dict):
        raise InvalidExecutionInput(
            "Invalid execution input: --merge needs the execution's input to be a JSON object"
        )
    return {**before, **given}


def update(
    step: Step,
    given: Any,
    *,
    merge: bool,
    by: str,
    schema: InputSchema | None,
) -> Transition:
    """The transition that updates the execution `step` was made from (at its current state).

    Raises ExecutionNotRunning for an execution that has closed, InvalidExecutionInput for
    an input that is not accepted (the machine's schema, the size limit, or a Wait that cannot
    read its time from it); nothing is changed then.
    """
    execution = step.row
    if execution is None:
        raise TypeError("an update needs the stored execution")
    if execution.status != RUNNING:
        raise ExecutionNotRunning(
            f"Execution is not running: '{step.execution_arn}' is {execution.status}; only a "
            "running execution can be updated"
        )
    new_input = updated_input(execution.input, given, merge=merge)
    input_text = dumps(new_input)
    parse_input(input_text)  # the size limit, as at StartExecution
    if schema is not None:
        schema.check(new_input)
    data = updated_input(step.data, given, merge=True) if merge else given
    before_due = execution.due_at
    step.execution_input = input_text
    step.data = dumps(data)
    if step.phase == PHASE_WAIT:
        _wait_again(step, data)
    details: dict[str, Any] = {
        "previousInput": execution.input,
        "input": input_text,
        "merge": merge,
        "updatedBy": by,
        "state": execution.state,
        "previousDueAt": before_due,
        "dueAt": step.progress().due_at,
    }
    step.add(EVENT_TYPE, {"executionUpdatedEventDetails": details})
    return replace(step.transition(), input=input_text)


def _wait_again(step: Step, data: Any) -> None:
    """Work the Wait state out again with `data`, as entered at its entry instant."""
    entered = step.entered_at if step.entered_at is not None else step.now
    decision: object = None
    try:
        decision = interpreter.enter(
            step.definition, step.state or "", data, step.context(), utc(entered)
        )
    except Exception as exc:  # noqa: BLE001 - whatever the state cannot do refuses the update
        cause = str(exc)
    else:
        cause = str(getattr(decision, "cause", None) or type(decision).__name__)
    if not isinstance(decision, WaitUntil):
        raise InvalidExecutionInput(
            f"Invalid execution input: the Wait state '{step.state}' cannot work out when it "
            f"ends with the new data: {cause}"
        )
    step.due_at = decision.until.timestamp()
    then = decision.then
    step.pending = WaitThen(
        next_state=then.next_state if isinstance(then, GoTo) else None,
        output=dumps(then.output),
    )
