"""Nested executions: a Task whose Resource is `arn:aws:states:::states:startExecution`
starts an execution of a configured machine, as AWS's Step Functions integration does.

Parameters: `StateMachineArn` (or a machine's name), `Input` (JSON, or JSON text; `{}` when
absent), `Name` (when absent, one derived from the task's idempotency key and attempt, so a
re-send after a crash finds the child it started instead of starting another).

- no suffix: the result is StartExecution's answer at once (`ExecutionArn`, `StartDate`, and
  the SDK's response metadata `SdkHttpMetadata`, `SdkResponseMetadata`, as AWS's);
- `.sync`: the task waits, durably, for the child to close (its start recorded in
  TaskSubmitted, as AWS's); its result is the child's
  DescribeExecution answer with AWS's capitalised names (`Input` and `Output` as JSON text), a
  child that did not succeed fails the task with `States.TaskFailed` and that answer as cause;
- `.sync:2`: the same, with `Input` and `Output` as JSON;
- `.waitForTaskToken`: the task waits for a callback with its token (pass `$$.Task.Token` in
  the child's Input).

Each child is linked to its parent in the store. When a child closes, the engine tells its
`.sync` parent (here, at once; and a sweep at start and every SWEEP_SECONDS tells any parent
a restart or another node left waiting). When a parent is stopped or times out, its children
that it waits for are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Coroutine
from dataclasses import replace
from email.utils import formatdate
from typing import Any, Protocol

from stepd import jsontext, logs
from stepd.asl.failures import STATES_RUNTIME, STATES_TASK_FAILED
from stepd.asl.integrations import CALLBACK, SYNC, SYNC2
from stepd.engine.arns import Arns
from stepd.errors import ApiError, StoreError
from stepd.store.base import Store
from stepd.store.records import (
    ABORTED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    ChildLink,
    Execution,
    TaskCall,
)
from stepd.tasks.caller import TaskOutcome

log = logs.get_logger("stepd.nested")

SWEEP_SECONDS = 30.0  # how often links are looked at for a parent to tell or a child to stop
SWEEP_BATCH = 1000  # links looked at per sweep
MAX_CAUSE_LENGTH = 32_768
_NAMES = uuid.UUID("5f1c2d4e-9a47-4c1b-8d55-0b9f6a1e7c3d")  # namespace of derived child names
WAITING_MODES = (SYNC, SYNC2, CALLBACK)  # the parent waits: its children stop with it


class Parent(Protocol):
    """What nested executions need of the engine."""

    async def start_child(self, machine: str, name: str, input_text: str) -> Execution: ...

    async def find_execution(self, machine: str, name: str) -> Execution | None: ...

    async def stop_execution(
        self, machine_name: str, name: str, error: str | None, cause: str | None
    ) -> Execution: ...

    async def complete_task(self, token: str, result: Any) -> None: ...

    async def send_task_failure(self, token: str, error: str | None, cause: str | None) -> None: ...


def _ms(ts: float | None) -> int | None:
    return None if ts is None else round(ts * 1000)


def described(execution: Execution, arns: Arns, *, as_json: bool) -> dict[str, Any]:
    """The child's DescribeExecution answer as a `.sync` (`as_json`: `.sync:2`) task's result."""

    def data(text: str | None) -> Any:
        return json.loads(text) if as_json and text is not None else text

    answer: dict[str, Any] = {
        "ExecutionArn": arns.execution(execution.machine, execution.name),
        "StateMachineArn": arns.state_machine(execution.machine),
        "Name": execution.name,
        "Status": execution.status,
        "StartDate": _ms(execution.start_date),
        "Input": data(execution.input),
        "InputDetails": {"Included": True},
    }
    if execution.stop_date is not None:
        answer["StopDate"] = _ms(execution.stop_date)
    if execution.output is not None:
        answer["Output"] = data(execution.output)
        answer["OutputDetails"] = {"Included": True}
    if execution.error is not None:
        answer["Error"] = execution.error
    if execution.cause is not None:
        answer["Cause"] = execution.cause
    return answer


def start_answer(child: Execution, arns: Arns) -> dict[str, Any]:
    """StartExecution's answer as AWS's integration gives it to the Task: the execution's ARN
    and start (milliseconds), with the SDK's response metadata (AWS's Java SDK's names)."""
    arn = arns.execution(child.machine, child.name)
    body = json.dumps(
        {"executionArn": arn, "startDate": round(child.start_date, 3)}, separators=(",", ":")
    )
    request_id = str(uuid.uuid4())
    date = formatdate(child.start_date, usegmt=True)
    length = str(len(body.encode()))
    content_type = "application/x-amz-json-1.0"
    return {
        "ExecutionArn": arn,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "x-amzn-RequestId": [request_id],
                "connection": ["keep-alive"],
                "Content-Length": [length],
                "Date": [date],
                "Content-Type": [content_type],
            },
            "HttpHeaders": {
                "connection": "keep-alive",
                "Content-Length": length,
                "Content-Type": content_type,
                "Date": date,
                "x-amzn-RequestId": request_id,
            },
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StartDate": _ms(child.start_date),
    }


def outcome_of(child: Execution, mode: str, arns: Arns) -> TaskOutcome:
    """What a closed child comes to for its `.sync` or `.sync:2` parent's task."""
    answer = described(child, arns, as_json=mode == SYNC2)
    if child.status == SUCCEEDED:
        return TaskOutcome(result=answer, final=True)
    cause = jsontext.compact(answer)
    return TaskOutcome(error=STATES_TASK_FAILED, cause=cause[:MAX_CAUSE_LENGTH], final=True)


def _api_failure(exc: ApiError) -> TaskOutcome:
    """StartExecution refused: AWS's error name and cause for a service integration."""
    code = exc.aws_type
    return TaskOutcome(
        error=f"StepFunctions.{code}Exception",
        cause=f"{exc} (Service: AWSStepFunctions; Status Code: {exc.status}; Error Code: "
        f"{code}; Request ID: {uuid.uuid4()}; Proxy: null)",
    )


class Nested:
    """Starts children for Task states, links them, and tells parents when they close."""

    def __init__(self, store: Store, *, arns: Arns, parent: Parent) -> None:
        self._store = store
        self.arns = arns
        self._engine = parent
        self._children: dict[int, ChildLink] = {}  # running children known here, by id
        self._parents: set[int] = set()  # executions known here to have children
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Sweep now and every SWEEP_SECONDS (on the running loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="stepd-nested-sweep")

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        failing = False  # the database away: said once per outage, not at every sweep
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                if not failing:
                    log.warning("nested.sweep_failed", error=str(exc))
                failing = True
            else:
                failing = False
            await asyncio.sleep(SWEEP_SECONDS)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- starting a child ------------------------------------------------------------

    async def call(
        self, parent: Execution, task: TaskCall, *, key: str, mode: str, attempt: int
    ) -> TaskOutcome:
        """The "call" of a `states:startExecution` Task: start (or, re-sent, find) its child."""
        params = json.loads(task.payload)
        arn = params.get("StateMachineArn") if isinstance(params, dict) else None
        if not isinstance(arn, str):
            return TaskOutcome(
                error=STATES_RUNTIME,
                cause="states:startExecution needs the parameter StateMachineArn (a string)",
            )
        given = params.get("Input")
        input_text = given if isinstance(given, str) else json.dumps({} if given is None else given)
        name = params.get("Name")
        if not isinstance(name, str):
            name = str(uuid.uuid5(_NAMES, f"{key}#{attempt}"))
        try:
            machine = self.arns.machine_of(arn)
            child = await self._child(parent, machine, name, input_text)
        except ApiError as exc:
            return _api_failure(exc)
        link = ChildLink(
            child_id=child.id,
            parent_id=parent.id,
            mode=mode,
            token=task.token if mode in (SYNC, SYNC2) else None,
        )
        await self._store.link_child(link)
        self._parents.add(parent.id)
        log.info("nested.child_started", child=child.name, child_machine=child.machine, mode=mode)
        started = start_answer(child, self.arns)
        if mode in (SYNC, SYNC2) and child.status != RUNNING:
            return replace(outcome_of(child, mode, self.arns), submitted=started)
        if mode == "":
            return TaskOutcome(result=started)
        self._children[child.id] = link
        # the task now waits, for the child or the callback; its start is TaskSubmitted's output
        return TaskOutcome(result=started)

    async def _child(
        self, parent: Execution, machine: str, name: str, input_text: str
    ) -> Execution:
        """The child this parent already started under `name` (a re-send), or a new one."""
        found = await self._engine.find_execution(machine, name)
        if found is not None:
            links = await self._store.child_links(child_id=found.id)
            if links and links[0].parent_id == parent.id:
                return found
        return await self._engine.start_child(machine, name, input_text)

    # -- when executions close -------------------------------------------------------

    def closed(self, execution: Execution) -> None:
        """`execution` closed: tell its waiting parent, stop the children it waited for."""
        link = self._children.pop(execution.id, None)
        if link is not None and link.mode in (SYNC, SYNC2):
            self._spawn(self._tell_parent(execution, link), f"stepd-nested-tell-{execution.id}")
        if execution.id in self._parents:
            self._parents.discard(execution.id)
            if execution.status in (ABORTED, TIMED_OUT):
                self._spawn(self._stop_children(execution), f"stepd-nested-stop-{execution.id}")

    async def _tell_parent(self, child: Execution, link: ChildLink) -> None:
        if link.token is None:
            return
        outcome = outcome_of(child, link.mode, self.arns)
        try:
            if outcome.error is None:
                await self._engine.complete_task(link.token, outcome.result)
            else:
                await self._engine.send_task_failure(link.token, outcome.error, outcome.cause)
        except ApiError as exc:  # the parent moved on (stopped, timed out): nothing to tell
            log.warning(
                "nested.parent_not_waiting", child=child.name, reason=exc.aws_type, error=str(exc)
            )
        except StoreError:
            log.exception("nested.tell_failed", child=child.name)  # the sweep tries again

    async def _stop_children(self, parent: Execution) -> None:
        cause = (
            f"The parent execution {self.arns.execution(parent.machine, parent.name)} "
            f"closed {parent.status}"
        )
        for link in await self._store.child_links(parent_id=parent.id):
            if link.mode not in WAITING_MODES:
                continue
            child = await self._store.get_execution(link.child_id)
            if child is not None and child.status == RUNNING:
                with contextlib.suppress(ApiError):
                    await self._engine.stop_execution(child.machine, child.name, None, cause)
                    log.info("nested.child_stopped", child=child.name)

    async def sweep(self) -> None:
        """Tell every parent whose child closed unseen, stop every child whose parent was
        stopped unseen, and know the running children again (after a restart)."""
        for link in await self._store.live_links(SWEEP_BATCH):
            parent = await self._store.get_execution(link.parent_id)
            child = await self._store.get_execution(link.child_id)
            if parent is None or child is None:
                continue
            if parent.status == RUNNING:
                self._parents.add(parent.id)
            if child.status == RUNNING:
                self._children.setdefault(child.id, link)
            elif parent.status == RUNNING and link.mode in (SYNC, SYNC2):
                await self._tell_parent(child, link)
            if parent.status in (ABORTED, TIMED_OUT) and child.status == RUNNING:
                await self._stop_children(parent)

    # -- reading ---------------------------------------------------------------------

    async def parent_of(self, execution: Execution) -> Execution | None:
        """The execution whose Task started `execution`, if one did (and is still stored)."""
        up = await self._store.child_links(child_id=execution.id)
        return await self._store.get_execution(up[0].parent_id) if up else None

    async def family(self, execution: Execution) -> tuple[Execution | None, list[Execution]]:
        """The execution's parent (if a Task started it) and the children its Tasks started."""
        parent = await self.parent_of(execution)
        children = []
        for link in await self._store.child_links(parent_id=execution.id):
            child = await self._store.get_execution(link.child_id)
            if child is not None:
                children.append(child)
        return parent, children
