"""Turning interpreter decisions into one transition: events to append, columns to set.

A `Step` starts from an execution as stored, runs every state that completes at once (Pass,
Choice, a Wait whose time has come, task results) and stops at the first thing that has to wait:
a Wait in the future, a task to call, the children of a Parallel or Map state, or the end of
the execution. A Step runs one cursor: the execution's root, or a child of a Parallel or Map
state (a branch or an iteration), whose end is its parent's business, not the execution's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from stepd import logs
from stepd.asl import interpreter
from stepd.asl.decisions import (
    CallTask,
    Caught,
    Context,
    Decision,
    Fail,
    FanOut,
    GoTo,
    JsonText,
    RetryAt,
    Succeed,
    WaitUntil,
    assigned_by,
)
from stepd.asl.failures import (
    STATES_DATA_LIMIT_EXCEEDED,
    STATES_HEARTBEAT_TIMEOUT,
    STATES_QUERY_EVALUATION_ERROR,
    STATES_RUNTIME,
    STATES_TIMEOUT,
    reported,
)
from stepd.asl.integrations import is_activity, waits_for_result
from stepd.engine import history
from stepd.engine.arns import map_run_arn, role_arn
from stepd.engine.history import dumps
from stepd.engine.inputs import MAX_INPUT_BYTES
from stepd.engine.tokens import make_token
from stepd.errors import StatesRuntimeError
from stepd.store.records import (
    FAILED,
    PHASE_ENTER,
    PHASE_FANOUT,
    PHASE_TASK,
    PHASE_WAIT,
    QUEUED,
    ROOT,
    RUNNING,
    SUCCEEDED,
    Cursor,
    Execution,
    Fanout,
    NewEvent,
    Pending,
    Progress,
    Resume,
    TaskCall,
    Transition,
    WaitThen,
    child_id,
    new_event,
    progress_of,
)
from stepd.tasks.caller import TaskOutcome

log = logs.get_logger("stepd.engine")

MAX_EVENTS = 25_000  # AWS's history limit per execution
MAX_STEPS_PER_TRANSITION = 200  # instant states run in one commit before yielding
CHILD_WINDOW = 200  # a Map's children created (queued) at a time, from its stored input
LATE_ERROR = "stepd.StepLate"  # a task later than its machine allows; caught, never retried
MAX_STATE_DATA_BYTES = MAX_INPUT_BYTES  # a state's output or task input, as UTF-8 JSON


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def resource_text(resource: Any) -> str:
    return resource if isinstance(resource, str) else json.dumps(resource, sort_keys=True)


class _LazyContext(Context):
    """A Context whose execution input and variables are parsed, and its times made, only when
    the interpreter first reads one of them (a plain Task step never does). What they are made
    from is taken when the context is; the fields with defaults are set at once."""

    def __init__(
        self,
        plain: dict[str, Any],
        *,
        input_text: str,
        start_date: float,
        entered_at: float,
        variables_text: str | None,
    ) -> None:
        values = self.__dict__  # set at once: a frozen dataclass refuses __setattr__
        values.update(plain)
        values["_made_from"] = (input_text, start_date, entered_at, variables_text)

    def __getattr__(self, name: str) -> Any:
        made_from = self.__dict__.pop("_made_from", None)
        if made_from is None:
            raise AttributeError(name)
        input_text, start_date, entered_at, variables_text = made_from
        values = self.__dict__
        values["execution_input"] = JsonText(input_text)  # parsed if a path reads it
        values["execution_start_time"] = utc(start_date)
        values["state_entered_time"] = utc(entered_at)
        values["variables"] = json.loads(variables_text) if variables_text else {}
        return object.__getattribute__(self, name)


class Step:
    """The transition being built for one execution at instant `now`."""

    token: str | None = None  # `$$.Task.Token` of the `.waitForTaskToken` Task being entered
    # Set for a child of a DISTRIBUTED Map (at any depth): marks every event it adds as its
    # Map Run's child's (history.MAP_RUN_CHILD), not shown in the execution's history
    run_child: dict[str, int] | None = None

    def __init__(
        self,
        *,
        definition: Mapping[str, Any],
        machine: str,
        name: str,
        execution_arn: str,
        machine_arn: str,
        execution_input: str,
        start_date: float,
        now: float,
        random: Callable[[], float],
        row: Execution | None = None,
        cursor: Progress | None = None,
        cursor_id: str = ROOT,
        events: list[NewEvent] | None = None,
        last_event_id: int | None = None,
        deadline: float | None = None,
        redrive_count: int = 0,
        redrive_date: float | None = None,
        time_scale: float = 1.0,
    ) -> None:
        # waits last 1/time_scale of their time (testing only)
        self.definition, self.time_scale = definition, time_scale
        self.redrive_count, self.redrive_date = redrive_count, redrive_date
        self.machine = machine
        self.name = name
        self.execution_arn = execution_arn
        self.machine_arn = machine_arn
        self.execution_input = execution_input
        self.start_date = start_date
        self.now = now
        self.random = random
        self.events: list[NewEvent] = [] if events is None else events
        self.cursor_id = cursor_id
        self.deadline = deadline  # the execution's TimeoutSeconds ends it then (root only)
        self.children: list[Cursor] = []  # created by a fan-out in this step
        self.status = RUNNING
        self.stop_date: float | None = None
        self.output: str | None = None
        self.error: str | None = None
        self.cause: str | None = None
        self.chain_due: float | None = None  # due instant of the wait this step began with
        self.row = row
        progress = cursor if cursor is not None else row
        if progress is None:
            self.last_event_id = 0
            self.state: str | None = None
            self.phase: str | None = None
            self.data = execution_input
            self.pending: Pending = None
            self.entered_event = 0
            self.entered_at: float | None = None
            self.attempt = 0
            self.retry_counts: tuple[int, ...] = ()
            self.due_at: float | None = None
            self.variables: str | None = None
        else:
            self.last_event_id = row.last_event_id if row is not None else 0
            self.state = progress.state
            self.phase = progress.phase
            self.data = progress.data or "{}"
            self.pending = progress.pending
            self.entered_event = progress.state_entered_event
            self.entered_at = progress.state_entered_at
            self.attempt = progress.attempt
            self.retry_counts = progress.retry_counts
            self.due_at = progress.due_at
            self.variables = progress.variables
            self.status = progress.status
            self.output = progress.output
        if last_event_id is not None:
            self.last_event_id = last_event_id

    # -- building blocks -------------------------------------------------------------

    def add(self, event_type: str, details: dict[str, Any]) -> int:
        if self.run_child is not None:
            details = {**details, history.MAP_RUN_CHILD: self.run_child}
        self.events.append(new_event(event_type, details, self.now))
        return self.last_event_id + len(self.events)

    @property
    def event_count(self) -> int:
        return self.last_event_id + len(self.events)

    @property
    def history_full(self) -> bool:
        """Whether the execution's history holds as many events as it may."""
        return self.event_count >= MAX_EVENTS

    def context(self) -> Context:
        """`$$` of this state visit, as the step stands now."""
        return _LazyContext(
            {
                "execution_id": self.execution_arn,
                "execution_name": self.name,
                "state_machine_id": self.machine_arn,
                "state_machine_name": self.machine,
                "role_arn": role_arn(self.machine_arn),
                "state_name": self.state or "",
                "retry_count": self.attempt,
                "redrive_count": self.redrive_count,
                "redrive_time": None if self.redrive_date is None else utc(self.redrive_date),
                "task_token": self.token,
            },
            input_text=self.execution_input,
            start_date=self.start_date,
            entered_at=self.entered_at if self.entered_at is not None else self.now,
            variables_text=self.variables,
        )

    def log_fields(self) -> dict[str, Any]:
        """The fields a log event about this step carries."""
        return {"machine": self.machine, "execution": self.name, "state": self.state}

    def state_type(self) -> str:
        state = self._state()
        return str(state.get("Type", "Unknown")) if state else "Unknown"

    @property
    def is_child(self) -> bool:
        return self.cursor_id != ROOT

    def transition(self) -> Transition:
        if self.row is None:
            raise ValueError("a new execution is created, not transitioned")
        return Transition(
            base=self.row,
            progress=self.progress(),
            events=tuple(self.events),
            cursors=tuple(self.children),
        )

    def progress(self) -> Progress:
        due_at = self.due_at
        if self.deadline is not None and self.status == RUNNING:
            # the execution's deadline wakes it like any due instant (children's too)
            due_at = self.deadline if due_at is None else min(due_at, self.deadline)
        return progress_of(
            {
                "status": self.status,
                "state": self.state,
                "phase": self.phase,
                "data": self.data,
                "pending": self.pending,
                "state_entered_event": self.entered_event,
                "state_entered_at": self.entered_at,
                "attempt": self.attempt,
                "retry_counts": self.retry_counts,
                "due_at": due_at,
                "stop_date": self.stop_date,
                "output": self.output,
                "error": self.error,
                "cause": self.cause,
                "variables": self.variables,
            }
        )

    @property
    def task(self) -> TaskCall:
        """The call the Task state this step is at makes."""
        if not isinstance(self.pending, TaskCall):
            raise TypeError(f"the state '{self.state}' has no task call pending")
        return self.pending

    # -- the execution's beginning and end ---------------------------------------------

    def begin(self, role_arn: str) -> None:
        self.add("ExecutionStarted", history.execution_started(self.execution_input, role_arn))
        try:
            self.state = interpreter.start_state(self.definition)
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            self.fail(STATES_RUNTIME, f"The definition has no valid StartAt: {exc}")
            return
        self.phase = PHASE_ENTER
        self.data = self.execution_input
        self.due_at = self.now

    def succeed(self, output: Any, text: str | None = None) -> None:
        """End with `output` (`text`: its JSON, when already made)."""
        if text is None:
            text = dumps(output)
        if not self.is_child:
            self.add("ExecutionSucceeded", history.execution_succeeded(text))
        self._close(SUCCEEDED)
        self.output = text

    def fail(self, error: str | None, cause: str | None) -> None:
        if not self.is_child:
            self.add("ExecutionFailed", history.execution_failed(error, cause))
        self._close(FAILED)
        self.error = error
        self.cause = cause

    def _close(self, status: str) -> None:
        self.status = status
        self.phase = None
        self.due_at = None
        # what a redrive needs: `state` and `data` stay, and so do the children of a Parallel
        # or Map state that failed
        fanout = self.pending if isinstance(self.pending, Fanout) else None
        self.pending = None if status == SUCCEEDED else Resume(fanout=fanout)
        self.stop_date = self.now

    # -- running states --------------------------------------------------------------

    def run(self) -> None:
        """Run every state that completes at `now`; stop at the first thing that waits."""
        for _ in range(MAX_STEPS_PER_TRANSITION):
            if self.status != RUNNING:
                return
            if self.history_full:
                self.fail(
                    STATES_RUNTIME, f"The execution reached the limit of {MAX_EVENTS} events."
                )
                return
            if self.phase == PHASE_ENTER:
                self._enter()
            elif self.phase == PHASE_WAIT and self.due_at is not None and self.due_at <= self.now:
                self._leave_wait()
            else:
                return

    def _enter(self) -> None:
        state_type = self.state_type()
        self.entered_event = self.add(
            f"{state_type}StateEntered", history.state_entered(self.state or "", self.data)
        )
        self.entered_at = self.now
        if self.attempt == 0:  # not a retry of an entry whose expression failed
            self.retry_counts = ()
        self.token = None
        if state_type == "Task" and self._waits_for_callback():
            self.token = make_token(self.machine, self.name, self.cursor_id)
        try:
            state_input = json.loads(self.data)
            decision: Decision = interpreter.enter(
                self.definition, self.state or "", state_input, self.context(), utc(self.now)
            )
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            decision = Fail(error=STATES_RUNTIME, cause=f"{type(exc).__name__}: {exc}")
        self.apply(decision, state_type)

    def _leave_wait(self) -> None:
        then = self.pending
        if not isinstance(then, WaitThen):
            raise TypeError(f"the Wait state '{self.state}' has no record of where it goes")
        if self.chain_due is None:
            self.chain_due = self.due_at
        self.add("WaitStateExited", history.state_exited(self.state or "", then.output))
        if then.next_state is None:
            self.succeed(json.loads(then.output))
            return
        self._go(then.next_state, then.output)

    def _go(self, next_state: str, output_text: str) -> None:
        self.state = next_state
        self.phase = PHASE_ENTER
        self.data = output_text
        self.pending = None
        self.due_at = self.now
        self.attempt = 0
        self.retry_counts = ()

    def _retry_task(self, due: float, counts: tuple[int, ...]) -> None:
        """The task's call goes out again at `due`, as its next attempt: its request is built
        again for that attempt, as AWS evaluates InputPath and Parameters (Arguments) for each
        one (`$$.State.RetryCount` is the attempt's number; a `.waitForTaskToken` task gets a
        new token, and the last one is refused from now on). The request is stored with the
        retry, so a re-send of this attempt after a crash sends the same body, with the same
        Idempotency-Key as every attempt of this state entry."""
        self.phase = PHASE_TASK
        self.attempt += 1
        self.retry_counts = counts
        self.due_at = due
        task = self.task
        first_due = task.first_due if task.first_due is not None else task.due
        if task.token is not None:
            self.token = make_token(self.machine, self.name, self.cursor_id)
        try:
            again: Decision = interpreter.enter(
                self.definition, self.state or "", json.loads(self.data), self.context(), utc(due)
            )
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            again = Fail(error=STATES_RUNTIME, cause=f"{type(exc).__name__}: {exc}")
        if isinstance(again, Fail):  # the request cannot be built for this attempt
            self.apply(again, "Task")
            return
        if isinstance(again, CallTask):
            text = dumps(again.payload)
            if self._too_large(text):
                return
            task = replace(
                task,
                payload=text,
                timeout_seconds=again.timeout_seconds,
                heartbeat_seconds=again.heartbeat_seconds if self.token else None,
            )
        self.pending = replace(
            task,
            sent=False,
            due=self.due_at,
            first_due=first_due,
            answered_at=None,
            heartbeat_at=None,
            token=self.token if task.token is not None else None,
        )

    def _on_error(self, error: str, cause: str | None) -> Decision:
        """The state's Retry and Catch, given `error`: RetryAt, Caught or Fail."""
        return interpreter.task_failed(
            self.definition,
            self.state or "",
            json.loads(self.data),
            error,
            cause,
            self.retry_counts,
            utc(self.now),
            self.random,
            self.context(),
        )

    def _recover(self, error: str, cause: str | None, state_type: str) -> bool:
        """A JSONata expression failed (States.QueryEvaluationError): the state's Retry enters
        it again later, or its Catch takes the error, as AWS does; False when neither does."""
        try:
            decision = self._on_error(error, cause)
        except Exception:  # a bug: the error fails the execution as it would have
            log.exception("step.unexpected_error", **self.log_fields())
            return False
        if isinstance(decision, RetryAt):
            self.phase = PHASE_ENTER
            self.pending = None
            self.attempt += 1
            self.retry_counts = decision.retry_counts
            self.due_at = decision.until.timestamp()
            return True
        if isinstance(decision, Caught):
            self.pending = None
            self.apply(decision, state_type)
            return True
        return False

    def _scaled(self, until: float) -> float:
        """When a wait until `until` ends under the execution's time scale."""
        if self.time_scale == 1.0 or until <= self.now:
            return until
        return self.now + (until - self.now) / self.time_scale

    def _runtime_cause(self, cause: str | None) -> str:
        prefix = (
            f"An error occurred while executing the state '{self.state}' "
            f"(entered at the event id #{self.entered_event})."
        )
        return f"{prefix} {cause}" if cause else prefix

    def _assign(self, decision: Decision) -> None:
        """Keep the variables a state's Assign left (None: it assigned nothing)."""
        then = decision.then if isinstance(decision, WaitUntil) else decision
        variables = then.variables if isinstance(then, GoTo | Succeed | Caught) else None
        if variables is not None:
            self.variables = dumps(variables)

    def _too_large(self, text: str) -> bool:
        """Fail with States.DataLimitExceeded when `text` is over AWS's 256 KiB."""
        if len(text) <= MAX_STATE_DATA_BYTES // 4 or len(text.encode()) <= MAX_STATE_DATA_BYTES:
            return False
        self.fail(
            STATES_DATA_LIMIT_EXCEEDED,
            f"The state/task '{self.state}' returned a result with a size exceeding "
            "the maximum number of bytes service limit.",
        )
        return True

    def _fail_state_cause(self, error: str | None, cause: str | None) -> str | None:
        """A Fail state's own cause, or, when its ErrorPath or CausePath could not be
        evaluated, the States.Runtime cause with AWS's prefix."""
        states = self.definition.get("States", {})
        state = states.get(self.state, {}) if isinstance(states, Mapping) else {}
        literal = isinstance(state, Mapping) and state.get("Error") == STATES_RUNTIME
        return self._runtime_cause(cause) if error == STATES_RUNTIME and not literal else cause

    def _exit(
        self, state_type: str, output: Any, variables: Mapping[str, Any] | None
    ) -> str | None:
        """Leave the state with `output` (its JSON text), recording what its Assign set; None
        (the state failed) when the output is over the size limit."""
        text = dumps(output)
        if self._too_large(text):
            return None
        exited = history.state_exited(self.state or "", text, assigned_by(variables))
        self.add(f"{state_type}StateExited", exited)
        return text

    def apply(self, decision: Decision, state_type: str) -> None:  # noqa: C901
        name = self.state or ""
        self._assign(decision)
        match decision:
            case (
                GoTo(next_state=next_state, output=output, variables=variables)
                | Caught(next_state=next_state, output=output, variables=variables)
            ):
                text = self._exit(state_type, output, variables)
                if text is not None:
                    self._go(next_state, text)
            case Succeed(output=output, variables=variables):
                text = self._exit(state_type, output, variables)
                if text is not None:
                    self.succeed(output, text)
            case Fail(error=error, cause=cause, map_items=map_items):
                if map_items is not None:
                    self.add("MapStateStarted", history.fanout_started("Map", map_items))
                if state_type != "Fail":
                    prefixed = error in {STATES_RUNTIME, STATES_QUERY_EVALUATION_ERROR}
                    cause = self._runtime_cause(cause) if prefixed else cause
                    if error == STATES_QUERY_EVALUATION_ERROR and self._recover(
                        error, cause, state_type
                    ):
                        return
                    cause = cause or None  # an empty cause (a task's timeout): none, as AWS
                    if error == STATES_QUERY_EVALUATION_ERROR:
                        self.add("EvaluationFailed", history.evaluation_failed(error, cause, name))
                        if state_type in {"Map", "Parallel"}:
                            self.add(f"{state_type}StateFailed", {})
                else:
                    cause = self._fail_state_cause(error, cause)
                self.fail(error or None, cause)  # a Fail state without Error: none, as AWS
            case WaitUntil(until=until, then=then):
                self.phase = PHASE_WAIT
                self.due_at = self._scaled(until.timestamp())
                self.pending = WaitThen(
                    next_state=then.next_state if isinstance(then, GoTo) else None,
                    output=dumps(then.output),
                )
            case CallTask(
                resource=resource,
                payload=payload,
                timeout_seconds=timeout,
                heartbeat_seconds=heartbeat,
            ):
                text = dumps(payload)
                if self._too_large(text):
                    return
                due = self.chain_due if self.chain_due is not None else self.now
                self.phase = PHASE_TASK
                self.pending = TaskCall(
                    resource=resource,
                    payload=text,
                    timeout_seconds=timeout,
                    due=due,
                    token=self.token,
                    heartbeat_seconds=heartbeat if self.token else None,
                )
                # due since its wait ended: a task reached from a Wait keeps the row's due
                # instant, so its commit leaves the indexes on it alone
                self.due_at = due
            case RetryAt(until=until, retry_counts=counts):
                self._retry_task(self._scaled(until.timestamp()), counts)
            case FanOut():
                self._fan_out(decision)

    # -- Parallel and Map ------------------------------------------------------------

    @property
    def fanout(self) -> Fanout:
        if not isinstance(self.pending, Fanout):
            raise TypeError(f"the state '{self.state}' has no children")
        return self.pending

    def _fan_out(self, decision: FanOut) -> None:
        """Create the first children (at most `CHILD_WINDOW`, queued) and start as many as the
        limit allows; the others are created a window at a time as slots free up
        (`more_children`), so that a Map of many items never holds them all as cursors."""
        kind = decision.kind
        total = len(decision.inputs)
        started = self.add(f"{kind}StateStarted", history.fanout_started(kind, total))
        run = None
        if kind == "Map" and interpreter.distributed(self.definition, self.state or ""):
            run = self._map_run_started(decision)
        self.phase = PHASE_FANOUT
        self.due_at = self.now  # the engine looks at it now (and at its children)
        self.pending = Fanout(
            kind=kind,
            total=total,
            started_event=started,
            limit=max(1, decision.limit),
            tolerated_count=decision.tolerated_count,
            tolerated_percentage=decision.tolerated_percentage,
            map_run=run,
        )
        window = total if kind == "Parallel" else min(total, max(CHILD_WINDOW, decision.limit))
        for queued in self._queued(0, decision.inputs[:window]):
            self.children.append(
                self.start_child(queued) if queued.slot < self.fanout.limit else queued
            )

    def _map_run_started(self, decision: FanOut) -> int:
        """MapRunStarted, right after MapStateStarted (its ARN names this event): its id."""
        event_id = self.event_count + 1
        label = interpreter.map_label(self.definition, self.state or "")
        facts = {
            "total": len(decision.inputs),
            "maxConcurrency": decision.max_concurrency,
            "toleratedFailureCount": decision.tolerated_count or 0,
            "toleratedFailurePercentage": decision.tolerated_percentage or 0.0,
            "executionRedrives": self.redrive_count,
        }
        arn = map_run_arn(self.execution_arn, label, event_id)
        return self.add("MapRunStarted", history.map_run_started(arn, facts))

    def add_iteration(self, event_type: str, slot: int, **facts: str | None) -> None:
        """MapIterationStarted (with the child's `input`), ...Succeeded or ...Failed (with its
        `error` and `cause`) of the child in `slot`; a Map Run's keep these facts (for its
        child executions) and are not shown in the execution's history."""
        details = history.map_iteration(event_type, self.state or "", slot)
        run = self.fanout.map_run
        if run is not None:
            details[history.MAP_RUN_ITERATION] = {"run": run, "index": slot, **facts}
        self.add(event_type, details)

    def _queued(self, first_slot: int, inputs: Sequence[Any]) -> list[Cursor]:
        """The children in slots `first_slot`... with `inputs`, queued."""
        fan = self.fanout
        state = self.state or ""
        start_at = (
            interpreter.start_state(interpreter.branch(self.definition, state, 0))
            if (fan.kind == "Map" and inputs)
            else ""
        )
        queued: list[Cursor] = []
        for slot, value in enumerate(inputs, first_slot):
            if fan.kind == "Parallel":
                start_at = interpreter.start_state(interpreter.branch(self.definition, state, slot))
            queued.append(
                Cursor(
                    id=child_id(self.cursor_id, fan.started_event, slot),
                    parent=self.cursor_id,
                    slot=slot,
                    status=QUEUED,
                    state=start_at,
                    phase=PHASE_ENTER,
                    data=dumps(value),
                    variables=self.variables,  # children read the outer variables; theirs stay
                )
            )
        return queued

    def more_children(self, first_slot: int) -> list[Cursor]:
        """The next window of a Map's children, from `first_slot`, queued: their inputs
        evaluated again from the state's input, as its entry did (the fan-out record keeps
        only counts, the state's input is stored with it)."""
        fan = self.fanout
        if fan.kind != "Map":  # a Parallel state creates all its branches with the fan-out
            raise StatesRuntimeError(
                f"The {fan.kind} state '{self.state}' has no child {first_slot}"
            )
        stop = min(fan.total, first_slot + max(CHILD_WINDOW, fan.limit))
        entered = utc(self.entered_at if self.entered_at is not None else self.now)
        inputs = interpreter.map_inputs(
            self.definition, self.state or "", json.loads(self.data), self.context(), entered,
            first_slot, stop,
        )  # fmt: skip
        if len(inputs) != stop - first_slot:
            raise StatesRuntimeError(
                f"The Map state '{self.state}' gives {len(inputs)} items for its children "
                f"{first_slot} to {stop - 1}: its input no longer gives {fan.total} items"
            )
        return self._queued(first_slot, inputs)

    def start_child(self, queued: Cursor) -> Cursor:
        """Start the queued child `queued` (the next slot); the child as started."""
        fan = self.fanout
        if fan.kind == "Map":
            self.add_iteration("MapIterationStarted", queued.slot, input=queued.data)
        self.pending = replace(fan, next_slot=queued.slot + 1, running=fan.running + 1)
        return replace(queued, status=RUNNING, due_at=self.now)

    def again(self) -> None:
        """The state's Retry came due: fan out again with the same input (no new entry)."""
        self.pending = None
        try:
            decision: Decision = interpreter.enter(
                self.definition,
                self.state or "",
                json.loads(self.data),
                self.context(),
                utc(self.now),
            )
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            decision = Fail(error=STATES_RUNTIME, cause=f"{type(exc).__name__}: {exc}")
        self.apply(decision, self.state_type())

    def fanout_succeeded(self, results: JsonText) -> None:
        """Every child succeeded: their outputs, in slot order (a JSON array's text), are the
        state's result. When the state passes its result on as it is, the text is its output,
        never parsed."""
        kind = self.fanout.kind
        if kind == "Map":
            run = self.fanout.map_run
            if run is not None:
                self.add("MapRunSucceeded", history.map_run_ended(run))
            self.add("MapStateSucceeded", {})
        decision: Decision | None
        try:
            decision = interpreter.passed_through(self.definition, self.state or "", results)
            if decision is None:
                decision = interpreter.task_succeeded(
                    self.definition,
                    self.state or "",
                    json.loads(self.data),
                    results.value(),
                    self.context(),
                    utc(self.now),
                )
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            decision = Fail(error=STATES_RUNTIME, cause=f"{type(exc).__name__}: {exc}")
        if isinstance(decision, Fail | Caught):
            self.add(f"{kind}StateFailed", {})
        self.pending = None
        self.apply(decision, kind)

    def fanout_failed(self, error: str | None, cause: str | None) -> None:
        """A child failed beyond the tolerance: the state's Retry and Catch, with its error."""
        fan = self.fanout
        if fan.map_run is not None:
            self.add("MapRunFailed", history.map_run_failed(fan.map_run, error, cause))
        decision: Decision
        try:
            decision = interpreter.task_failed(
                self.definition,
                self.state or "",
                json.loads(self.data),
                error or "",
                cause,
                self.retry_counts,
                utc(self.now),
                self.random,
                self.context(),
            )
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            decision = Fail(error=STATES_RUNTIME, cause=f"{type(exc).__name__}: {exc}")
        if isinstance(decision, RetryAt):
            self.attempt += 1
            self.retry_counts = decision.retry_counts
            self.due_at = self._scaled(decision.until.timestamp())
            self.pending = replace(fan, retry_at=self.due_at)
            return
        self.add(f"{fan.kind}StateFailed", {})
        if isinstance(decision, Fail):
            # the child's own error, as AWS reports it (no States.Runtime prefix added); the
            # fan-out record is kept for a redrive
            self.fail(decision.error or None, decision.cause)
            return
        self.pending = None
        self.apply(decision, fan.kind)

    # -- tasks -----------------------------------------------------------------------

    def would_retry(self, error: str) -> bool:
        """Whether the state's Retry would try again after its call failed with `error`."""
        try:
            decision = self._on_error(error, None)
        except Exception:  # a bug: the call goes out, and its error fails the state
            log.exception("step.unexpected_error", **self.log_fields())
            return False
        return isinstance(decision, RetryAt)

    def task_sent(self, region: str) -> None:
        """Record the intent to call: the task is scheduled and started."""
        task = self.task
        resource = resource_text(task.resource)
        if is_activity(resource):
            # ActivityScheduled once the task is queued (`await_callback`: an activity that
            # does not exist fails the execution without one, as AWS's), ActivityStarted when
            # a worker takes it (`activity_taken`)
            task = replace(task, activity_events=True)
        elif history.is_lambda_function(resource):
            scheduled = history.lambda_scheduled(resource, task.payload, task.timeout_seconds)
            self.add("LambdaFunctionScheduled", scheduled)
            self.add("LambdaFunctionStarted", {})
        else:
            self.add(
                "TaskScheduled",
                history.task_scheduled(resource, task.payload, task.timeout_seconds, region),
            )
            self.add("TaskStarted", history.task_started(resource))
        self.pending = task.as_sent(self.now)

    def _state(self) -> Mapping[str, Any]:
        states = self.definition.get("States", {})
        # dict first: a plain isinstance check, where Mapping's goes through the ABC machinery
        state = states.get(self.state, {}) if isinstance(states, (dict, Mapping)) else {}
        return state if isinstance(state, (dict, Mapping)) else {}

    def _waits_for_callback(self) -> bool:
        return waits_for_result(self._state().get("Resource"))

    def await_callback(self, answer: Any = None) -> None:
        """The call of a `.waitForTaskToken` task was answered: the task now waits for
        SendTaskSuccess or SendTaskFailure until its TimeoutSeconds or HeartbeatSeconds. The
        call's `answer` (a `.sync` nested execution's start) is recorded as AWS does, in
        TaskSubmitted; an activity's task (queued, no call) has none."""
        task = self.task
        resource = resource_text(task.resource)
        if task.activity_events:
            self._activity_scheduled(resource)
        elif not is_activity(resource):
            self.add("TaskSubmitted", history.task_submitted(resource, dumps(answer)))
        task = replace(self.task, answered_at=self.now)
        self.pending = task
        self.due_at = task.callback_deadline()

    def heartbeat(self) -> None:
        """SendTaskHeartbeat: the heartbeat deadline starts again from now."""
        task = replace(self.task, heartbeat_at=self.now)
        self.pending = task
        if task.awaiting_callback:
            self.due_at = task.callback_deadline()

    def _activity_scheduled(self, resource: str) -> None:
        task = self.task
        scheduled = history.activity_scheduled(
            resource, task.payload, task.timeout_seconds, task.heartbeat_seconds
        )
        self.add("ActivityScheduled", scheduled)

    def activity_taken(self, worker: str | None) -> None:
        """A worker took the activity's task (GetActivityTask): its first heartbeat."""
        if self.task.activity_events:
            self.add("ActivityStarted", history.activity_started(worker))
        self.heartbeat()

    def callback_timed_out(self) -> None:
        """No callback came in time: the task fails with States.Timeout, its state's or its
        heartbeat's (a retrier or catcher naming States.HeartbeatTimeout tells them apart)."""
        if self.task.timed_out_by_heartbeat(self.now):
            self.task_done(TaskOutcome(error=STATES_HEARTBEAT_TIMEOUT, cause=None))
        else:
            self.task_done(TaskOutcome(error=STATES_TIMEOUT, cause=None))

    def task_done(self, outcome: TaskOutcome) -> None:
        """Record a task's outcome and decide what follows."""
        resource = resource_text(self.task.resource)
        if outcome.submitted is not None:
            self.add("TaskSubmitted", history.task_submitted(resource, dumps(outcome.submitted)))
        decision: Decision
        try:
            decision = self._after_task(resource, outcome)
        except Exception as exc:  # whatever goes wrong in a step fails it with States.Runtime
            log.exception("step.unexpected_error", **self.log_fields())
            decision = Fail(error=STATES_RUNTIME, cause=f"{type(exc).__name__}: {exc}")
        self.apply(decision, "Task")

    def _after_task(self, resource: str, outcome: TaskOutcome) -> Decision:
        state_input = json.loads(self.data)
        decision: Decision
        function = history.is_lambda_function(resource)
        activity = self.task.activity_events
        if activity and outcome.error == STATES_RUNTIME:  # not queued: the activity is gone
            return Fail(error=STATES_RUNTIME, cause=outcome.cause)
        if activity and self.task.answered_at is None:  # never queued: a mocked answer
            self._activity_scheduled(resource)
        if outcome.error is None:
            output = dumps(outcome.result)
            if activity:
                self.add("ActivitySucceeded", history.activity_succeeded(output))
            elif function:
                self.add("LambdaFunctionSucceeded", history.lambda_succeeded(output))
            else:
                self.add("TaskSucceeded", history.task_succeeded(resource, output))
            decision = interpreter.task_succeeded(
                self.definition,
                self.state or "",
                state_input,
                outcome.result,
                self.context(),
                utc(self.now),
            )
        else:
            timed_out = outcome.error in {STATES_TIMEOUT, STATES_HEARTBEAT_TIMEOUT}
            error = reported(outcome.error)
            if activity:
                kind = "ActivityTimedOut" if timed_out else "ActivityFailed"
                details = history.activity_failed(error, outcome.cause, timed_out=timed_out)
            elif function:
                kind = "LambdaFunctionTimedOut" if timed_out else "LambdaFunctionFailed"
                details = history.lambda_failed(error, outcome.cause, timed_out=timed_out)
            else:
                kind = "TaskTimedOut" if timed_out else "TaskFailed"
                details = (history.task_timed_out if timed_out else history.task_failed)(
                    resource, error, outcome.cause
                )
            self.add(kind, details)
            decision = interpreter.task_failed(
                _without_retry(self.definition, self.state or "")
                if outcome.error == LATE_ERROR
                else self.definition,
                self.state or "",
                state_input,
                outcome.error,
                outcome.cause,
                self.retry_counts,
                utc(self.now),
                self.random,
                self.context(),
            )
            if isinstance(decision, RetryAt) and outcome.retry_after:
                earliest = self.now + outcome.retry_after
                if decision.until.timestamp() < earliest:
                    decision = RetryAt(
                        until=utc(earliest),
                        retry_counts=decision.retry_counts,
                        error=decision.error,
                        cause=decision.cause,
                    )
        return decision


def _without_retry(definition: Mapping[str, Any], state_name: str) -> Mapping[str, Any]:
    states = dict(definition.get("States", {}))
    states[state_name] = {k: v for k, v in states[state_name].items() if k != "Retry"}
    return {**definition, "States": states}
