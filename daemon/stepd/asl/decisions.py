"""What the interpreter decides. Plain, frozen values; the engine carries them out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stepd.frozen import quick_init


@dataclass(frozen=True)
class JsonText:
    """A JSON value kept as its text: parsed only when something reads it (`value`), written
    back as the same text. The engine passes the execution's input this way, so that a state
    that never reads `$$.Execution.Input` never parses it, and a Map's gathered results."""

    text: str

    def value(self) -> Any:
        return json.loads(self.text)


class Variables(dict[str, Any]):
    """Every variable after a state's Assign; `assigned`: the names and values that Assign set
    (the history's assignedVariables)."""

    __slots__ = ("assigned",)

    def __init__(self, merged: Mapping[str, Any], assigned: Mapping[str, Any]) -> None:
        super().__init__(merged)
        self.assigned = assigned


def assigned_by(variables: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """What the Assign that left `variables` set; None when it is not known (no Assign)."""
    return variables.assigned if isinstance(variables, Variables) else None


@dataclass(frozen=True, kw_only=True)
class Context:
    """The `$$` context object of one state visit."""

    execution_id: str  # execution ARN
    execution_name: str
    execution_input: Any  # the value, or a `JsonText` parsed when a path reads it
    execution_start_time: datetime
    state_machine_id: str  # state machine ARN
    state_machine_name: str
    state_name: str
    state_entered_time: datetime
    retry_count: int = 0
    role_arn: str = ""
    redrive_count: int | None = 0  # how many times it was redriven (None: TestState's, none)
    redrive_time: datetime | None = None  # when it was last redriven (None: never)
    # `$$.Task.Token`: set only while a `.waitForTaskToken` Task is entered and runs; the
    # context object has no `Task` at all otherwise, as on AWS.
    task_token: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)  # what earlier states assigned

    def as_json(self) -> ContextObject:
        """The context object as `$$` paths see it; `$name` paths read its `variables`."""
        fields: dict[str, Any] = {
            "Execution": {
                "Id": self.execution_id,
                "Input": self.execution_input,
                "StartTime": iso_millis(self.execution_start_time),
                "Name": self.execution_name,
                "RoleArn": self.role_arn,
                **({} if self.redrive_count is None else {"RedriveCount": self.redrive_count}),
                # only once it was redriven, as AWS's context object
                **(
                    {}
                    if self.redrive_time is None
                    else {"RedriveTime": iso_millis(self.redrive_time)}
                ),
            },
            "State": {
                "EnteredTime": iso_millis(self.state_entered_time),
                "Name": self.state_name,
                "RetryCount": self.retry_count,
            },
            "StateMachine": {"Id": self.state_machine_id, "Name": self.state_machine_name},
        }
        if self.task_token is not None:
            fields["Task"] = {"Token": self.task_token}
        return ContextObject(self.variables, fields)


class ContextObject(dict[str, Any]):
    """The `$$` object a state reads, carrying the variables its `$name` paths read."""

    def __init__(self, variables: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        super().__init__(fields)
        self.variables = variables

    def complete(self) -> ContextObject:
        """This object with the execution's input parsed, if it was still text (`JsonText`):
        done by whatever reads the context object, before it reads it."""
        execution = self.get("Execution")
        if isinstance(execution, dict) and isinstance(execution.get("Input"), JsonText):
            execution["Input"] = execution["Input"].value()
        return self


def iso_millis(moment: datetime) -> str:
    """`2019-03-26T20:14:13.192Z`, the format AWS uses in the context object."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@quick_init
@dataclass(frozen=True, kw_only=True)
class GoTo:
    """Leave the current state for `next_state` with `output` as its input."""

    next_state: str
    output: Any
    variables: Mapping[str, Any] | None = None  # every variable after the state's Assign


@quick_init
@dataclass(frozen=True, kw_only=True)
class Succeed:
    """The execution succeeds with `output`."""

    output: Any
    variables: Mapping[str, Any] | None = None  # every variable after the state's Assign


@quick_init
@dataclass(frozen=True, kw_only=True)
class Fail:
    """The execution fails. `States.Runtime` is never caught. `map_items`: a DISTRIBUTED Map
    whose run could not start, with this many items (its MapStateStarted comes first)."""

    error: str
    cause: str | None = None
    map_items: int | None = None


@quick_init
@dataclass(frozen=True, kw_only=True)
class WaitUntil:
    """A Wait state: stay until `until` (aware UTC), then carry out `then`.

    `until` is whole seconds for `Timestamp[Path]` (AWS truncates milliseconds) and exactly
    the entry instant plus the duration for `Seconds[Path]`; it may lie in the past.
    """

    until: datetime
    then: GoTo | Succeed


@quick_init
@dataclass(frozen=True, kw_only=True)
class CallTask:
    """A Task state: call `resource` with `payload` (the effective input)."""

    resource: str | Mapping[str, Any]  # as written: an ARN, or `{"Fn::GetAtt": …}` / `{"Ref": …}`
    payload: Any
    timeout_seconds: float | None = None  # TimeoutSeconds[Path]; None means AWS's default
    heartbeat_seconds: float | None = None  # HeartbeatSeconds[Path]; None: no heartbeat


@quick_init
@dataclass(frozen=True, kw_only=True)
class RetryAt:
    """A retrier matched: call the task again at `until` with the updated counters."""

    until: datetime
    retry_counts: tuple[int, ...]  # one counter per retrier, in declaration order
    error: str
    cause: str | None = None


@quick_init
@dataclass(frozen=True, kw_only=True)
class Caught:
    """A catcher matched: go to `next_state` with `output` (input + error at ResultPath)."""

    next_state: str
    output: Any
    error: str
    cause: str | None = None
    variables: Mapping[str, Any] | None = None  # every variable after the catcher's Assign


@quick_init
@dataclass(frozen=True, kw_only=True)
class FanOut:
    """A Parallel or Map state: run one child per input (slot order), then gather the outputs.

    The children's definitions come from `interpreter.branch`. When every child has succeeded,
    the outputs (in slot order) are the state's result, handled by `task_succeeded`; a child's
    failure beyond the tolerance fails the state with the child's error, handled by
    `task_failed` (a Retry runs the whole state again).
    """

    kind: str  # "Parallel" or "Map"
    inputs: tuple[Any, ...]
    limit: int  # children running at once
    max_concurrency: int = 0  # Map: its MaxConcurrency as given (0: none given)
    tolerated_count: int | None = None  # Map: failed children tolerated (None: not set)
    tolerated_percentage: float | None = None


Decision = GoTo | Succeed | Fail | WaitUntil | CallTask | RetryAt | Caught | FanOut
