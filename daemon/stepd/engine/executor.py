"""The durable executor: the only writer of execution state.

Every transition is one store commit. Before a task is called its intent (TaskScheduled and
TaskStarted, or LambdaFunctionScheduled and LambdaFunctionStarted for a Lambda function ARN,
`TaskCall.sent`) is committed; the call carries an idempotency key made of the
execution (its unique id) and the id of the state's TaskStateEntered event, so a retry and a
re-send after a crash carry the same key (stepd.tasks.keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random as _random
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from types import MappingProxyType
from typing import Any

from stepd import jsontext, logs
from stepd.asl.decisions import JsonText
from stepd.asl.failures import STATES_DATA_LIMIT_EXCEEDED, STATES_RUNTIME, STATES_TIMEOUT
from stepd.asl.http_task import HTTP_INVOKE, HTTP_TASK_TIMEOUT_SECONDS, is_http_invoke
from stepd.asl.integrations import (
    FUNCTION_NAME,
    function_keys,
    invalid_payload_cause,
    is_activity,
    is_lambda_invoke,
    lambda_payload,
    lambda_result,
    names_a_function,
    start_execution_mode,
)
from stepd.engine import history
from stepd.engine.activities import Activities
from stepd.engine.arns import ROLE_ARN, Arns, check_name
from stepd.engine.hosts import HostDown, Hosts
from stepd.engine.inputs import parse_input, same_input
from stepd.engine.machines import DEFAULT_TASK_TIMEOUT_SECONDS, Machine
from stepd.engine.nested import Nested
from stepd.engine.queue import DEFAULT_WORKERS, DueQueue, Later
from stepd.engine.redrive import refusal, revive
from stepd.engine.steps import LATE_ERROR, Step, resource_text
from stepd.engine.tags import Tags
from stepd.engine.testruns import TestRuns, TestSettings
from stepd.engine.tokens import same_token, token_target
from stepd.engine.tree import Work, aborted
from stepd.engine.updates import update
from stepd.errors import (
    ExecutionAlreadyExists,
    ExecutionDoesNotExist,
    ExecutionNotRedrivable,
    InvalidOutput,
    InvalidPayload,
    InvalidToken,
    StateMachineDoesNotExist,
    TaskDoesNotExist,
    TaskTimedOut,
    ValidationException,
)
from stepd.jsontext import may_hold_surrogate, unpaired_surrogate
from stepd.store.base import Store
from stepd.store.records import (
    ABORTED,
    PHASE_FANOUT,
    PHASE_TASK,
    ROOT,
    RUNNING,
    TIMED_OUT,
    Cursor,
    Event,
    Execution,
    NewEvent,
    NewExecution,
    Progress,
    Redrive,
    Resume,
    TaskCall,
    Transition,
    child_id,
)
from stepd.tasks.caller import Caller, TaskOutcome, TaskRequest
from stepd.tasks.endpoints import EndpointMap
from stepd.tasks.http_invoke import endpoint_of
from stepd.tasks.keys import idempotency_key, new_uid

log = logs.get_logger("stepd.engine")
SERVICE_PREFIX = "arn:aws:states:::"  # an AWS service integration: arn:aws:states:::service:api

MAX_ERROR_LENGTH = 256
MAX_CAUSE_LENGTH = 32_768
MAX_CALLBACK_OUTPUT_BYTES = 262_144  # SendTaskSuccess's output, as UTF-8
ROW_CACHE_SECONDS = 120.0  # executions due within this long are kept in memory as committed
PURGE_BATCH = 1000  # executions deleted per transaction, so writes never wait long
PROBE_TIMEOUT_SECONDS = 5.0  # for the HEAD request that asks whether a down host is back
REDRIVE_TOKEN_SECONDS = 900.0  # AWS answers a redrive's clientToken again for 15 minutes
MAX_CURSORS_PER_TRANSITION = 64  # children stepped in one commit


@dataclass
class EngineStats:
    """Counters a person or a metrics endpoint reads."""

    steps: int = 0
    steps_late: int = 0
    worst_lateness: float = 0.0
    task_calls: dict[str, int] = field(default_factory=dict)
    resends: int = 0
    in_flight: int = 0


class EngineObserver:
    """What the engine reports as it runs, for metrics; this default ignores it.

    Methods are called on the event loop and must return at once, without I/O.
    """

    def step_started(self, lateness_seconds: float, *, late: bool) -> None:
        """A task step starts `lateness_seconds` after it was due; `late`: beyond the
        machine's threshold."""

    def task_called(self, outcome: TaskOutcome) -> None:
        """A task call (first send or re-send) came to `outcome`."""

    def execution_closed(self, execution: Execution, arn: str) -> None:
        """`execution` (of ARN `arn`) closed: succeeded, failed, timed out or stopped."""


@dataclass(frozen=True, kw_only=True)
class EngineStatus:
    """The engine's figures at one instant."""

    queued: int  # executions due and waiting for a worker
    in_flight: int  # task calls waiting for an answer
    waiting_for_host: int  # task calls held until their host is back
    hosts_down: int
    steps: int  # task steps started since the engine started
    steps_late: int  # of which later than their machine's threshold
    resends: int  # calls sent again after a restart
    down: tuple[HostDown, ...] = ()  # task hosts that are down, longest down first


@dataclass(frozen=True, kw_only=True)
class Started:
    execution: Execution
    created: bool


@dataclass(frozen=True, slots=True)
class _Answered:
    """A task call made and answered, its outcome not yet committed."""

    execution: Execution  # as committed with the call's intent
    definition: Mapping[str, Any]
    outcome: TaskOutcome


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        caller: Caller,
        machines: Mapping[str, Machine],
        arns: Arns,
        task_timeout_seconds: float = DEFAULT_TASK_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        workers: int = DEFAULT_WORKERS,
        uid: Callable[[], str] = new_uid,
        tests: TestRuns | None = None,
    ) -> None:
        self._store = store
        self.tests = tests if tests is not None else TestRuns()
        self.activities = Activities(store, arns=arns, clock=clock, taken=self.activity_taken)
        self.nested = Nested(store, arns=arns, parent=self)
        self.tags = Tags(store)
        self._caller = caller
        self._machines = dict(machines)
        self.arns = arns
        # where a stored endpoint goes for the executions of a machine this node's config does
        # not name (another node's, in a cluster): a path joins `[http] base_url` (`base_url`)
        self._elsewhere = EndpointMap(base_url="", routes={})
        self.task_timeout_seconds = task_timeout_seconds
        self.clock = clock
        self.random = random
        self._uid = uid
        self.stats = EngineStats()
        self._observer: EngineObserver = EngineObserver()
        self._queue = DueQueue(self.advance, workers=workers)
        self._definitions: dict[int, Mapping[str, Any]] = {}
        # definition id -> the endpoints stored with it, for the Task states the config
        # names no more (kept with each definition in _definitions; read again at a reload)
        self._stored_endpoints: dict[int, Mapping[str, str]] = {}
        self._retired: dict[str, Machine] = {}
        # The engine is the only writer, so what it committed last is what the store holds;
        # a stale entry would only fail its next commit's version check and be read again.
        self._rows: dict[int, Execution] = {}
        # The same, while an execution runs children: its row and running children as last
        # committed under its lock, so that each child's step does not read them again (the
        # row holds a Map's input, the children are up to 40 records to decode).
        self._tree_rows: dict[int, tuple[Execution, list[Cursor]]] = {}
        self._arm: Callable[[int, float], None] = self._queue.push
        self._hosts = Hosts(probe=self._probe, release=self._host_back, clock=clock)
        # Parallel and Map children: one lock per execution around read-modify-commit (never
        # around a call), the children's calls in flight, bounded like the workers
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._in_flight: dict[int, set[str]] = {}
        # children's answers waiting for their execution's lock, committed together
        self._answers: dict[int, list[tuple[Cursor, TaskOutcome]]] = {}
        self._host_waits: dict[int, set[str]] = {}  # children whose call waits for its host
        self._calls: set[asyncio.Task[None]] = set()
        self._call_slots = asyncio.Semaphore(workers)

    def set_timer(self, arm: Callable[[int, float], None]) -> None:
        """Where future due times go (the timers); without one, everything runs at once."""
        self._arm = arm

    def dispatch(self, execution_id: int, due_at: float) -> None:
        self._queue.push(execution_id, due_at)

    def overdue(self, execution_id: int, due_at: float) -> None:
        """A sweep found `execution_id` overdue in the store: queue it unless the engine has
        it in hand (queued, being handled, its answer waiting to be recorded, held for its
        host). A handler arms whatever it commits, so only a wake-up that was missed (or a
        handler that failed) needs the sweep; pushing one in hand would run it once more after
        its handler, to read it back from the store and find it already handled."""
        if not self.in_hand(execution_id):
            self._queue.push(execution_id, due_at)

    def in_hand(self, execution_id: int) -> bool:
        """Whether the engine has `execution_id` in hand (queued, being handled, its answer
        waiting to be recorded, held for its host)."""
        return self._queue.is_active(execution_id)

    def backlog(self) -> int:
        """How many due executions wait for a worker."""
        return len(self._queue)

    def observe(self, observer: EngineObserver) -> None:
        """Report steps and task calls to `observer` from now on."""
        self._observer = observer

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start running due work (on the running event loop)."""
        self._queue.start()
        self.nested.start()

    def close(self) -> None:
        """Start no new task call from now on; calls waiting for a host are made after the
        next start. Calls in flight go on until `drain`."""
        self._queue.close()
        self._hosts.close()
        self.activities.close()
        self.nested.close()

    async def drain(self, timeout: float) -> int:
        """Let calls in flight finish for up to `timeout` seconds, then cancel the rest (they
        are sent again, with the same key, after the next start); how many were cancelled."""
        started = self.clock()
        cancelled = await self._queue.stop(timeout=timeout)
        calls = set(self._calls)
        if calls:
            left = max(0.0, timeout - (self.clock() - started))
            _, pending = await asyncio.wait(calls, timeout=left)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            cancelled += len(pending)
        return cancelled

    async def reconfigure(
        self,
        machines: Mapping[str, Machine],
        *,
        task_timeout_seconds: float,
        caller: Caller | None = None,
    ) -> Caller | None:
        """Serve `machines` (running executions keep the definitions they started with), with
        a new task timeout and, when given, a new caller; the caller it replaced, to close."""
        await self.register(machines)
        self.task_timeout_seconds = task_timeout_seconds
        if caller is None:
            return None
        old, self._caller = self._caller, caller
        return old

    async def aclose(self) -> None:
        """Close the task caller's connections."""
        await self._caller.aclose()

    # -- reading ---------------------------------------------------------------------

    @property
    def caller(self) -> Caller:
        """The task caller (an EXPRESS execution run within a request uses it too)."""
        return self._caller

    @property
    def machines(self) -> Mapping[str, Machine]:
        """The configured machines, by name (read only)."""
        return MappingProxyType(self._machines)

    def status(self) -> EngineStatus:
        """What the engine is doing right now."""
        return EngineStatus(
            queued=len(self._queue),
            in_flight=self.stats.in_flight,
            waiting_for_host=self._hosts.waiting,
            hosts_down=self._hosts.down,
            steps=self.stats.steps,
            steps_late=self.stats.steps_late,
            resends=self.stats.resends,
            down=self._hosts.down_hosts(),
        )

    async def find_execution(self, machine: str, name: str) -> Execution | None:
        return await self._store.find_execution(machine, name)

    async def list_executions(
        self,
        *,
        machine: str | None,
        status: str | None,
        limit: int,
        before_id: int | None,
        redriven: bool | None = None,
    ) -> list[Execution]:
        """Newest first; `before_id` continues a previous page; `redriven` keeps only those
        redriven (True) or never redriven (False)."""
        return await self._store.list_executions(
            machine=machine, status=status, limit=limit, before_id=before_id, redriven=redriven
        )

    async def history(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]:
        """An execution's events in order (or reversed), continuing after event id `after`."""
        return await self._store.history(execution_id, reverse=reverse, limit=limit, after=after)

    def host_down_for(self, execution: Execution) -> HostDown | None:
        """The down host a running execution's task call goes to, if it is down."""
        task = execution.task
        if execution.status != RUNNING or task is None:
            return None
        url = self._task_url(execution, execution.state, task)
        return None if url is None else self._hosts.host_down(url)

    async def count_by_status(self) -> dict[str, int]:
        return await self._store.count_by_status()

    async def falling_due(
        self, start: float, end: float, *, machine: str | None, limit: int
    ) -> list[Execution]:
        """Running executions due from `start` to before `end`, earliest first."""
        return await self._store.falling_due(start, end, machine=machine, limit=limit)

    async def oldest_due(self) -> float | None:
        """The due instant of the earliest-due running execution now overdue, if any."""
        due = await self._store.due(self.clock(), 1)
        return due[0][1] if due else None

    async def test_settings(self, execution: Execution) -> TestSettings:
        """The time scale and test case `execution` runs with (testing only)."""
        return await self.tests.load(self._store, execution.id)

    async def definition_of(self, execution: Execution) -> Mapping[str, Any]:
        """The definition `execution` runs (the one it started with)."""
        return await self._definition(execution.definition_id)

    # -- definitions -----------------------------------------------------------------

    async def register(self, machines: Mapping[str, Machine]) -> None:
        """Snapshot each machine's definition in the store, with the endpoints of its Task
        states, and serve new executions with it."""
        registered: dict[str, Machine] = {}
        for name, machine in machines.items():
            definition_id = await self._store.put_definition(
                name, machine.definition_text, machine.state_endpoints
            )
            created_at = await self._store.first_registered(name)
            self._stored_endpoints[definition_id] = await self._store.get_definition_endpoints(
                definition_id
            )
            self._definitions[definition_id] = machine.definition
            registered[name] = replace(
                machine, definition_id=definition_id, created_at=created_at or self.clock()
            )
        # another node may have stored newer endpoints with a definition read before (read
        # before anything is swapped: a store that fails here leaves the last config whole)
        served = {machine.definition_id for machine in registered.values()}
        for definition_id in set(self._stored_endpoints) - served:
            self._stored_endpoints[definition_id] = await self._store.get_definition_endpoints(
                definition_id
            )
        # A machine dropped from the config starts nothing new, but its running executions
        # finish with the endpoints and policy they had.
        self._retired.update(
            {name: old for name, old in self._machines.items() if name not in registered}
        )
        for name in registered:
            self._retired.pop(name, None)
        self._machines = registered
        self._hosts.release_all()  # endpoints may have changed: look at each call again

    def _serving(self, name: str) -> Machine | None:
        """The machine running executions of `name` use: configured, or retired."""
        return self._machines.get(name) or self._retired.get(name)

    async def _definition(self, definition_id: int) -> Mapping[str, Any]:
        cached = self._definitions.get(definition_id)
        if cached is None:
            cached = json.loads(await self._store.get_definition(definition_id))
            self._stored_endpoints[definition_id] = await self._store.get_definition_endpoints(
                definition_id
            )
            self._definitions[definition_id] = cached
        return cached

    def machine(self, name: str) -> Machine:
        machine = self._machines.get(name)
        if machine is None:
            raise StateMachineDoesNotExist(
                f"State Machine Does Not Exist: '{self.arns.state_machine(name)}'"
            )
        return machine

    # -- the control API's writes ----------------------------------------------------

    async def start_execution(
        self,
        machine_name: str,
        name: str,
        input_text: str,
        *,
        test_case: str | None = None,
        time_scale: float | None = None,
    ) -> Started:
        """Start an execution; a test case and a time scale only with testing enabled."""
        machine = self.machine(machine_name)
        check_name(name)
        tested = self.tests.settings_for_start(
            machine.name, test_case=test_case, time_scale=time_scale
        )
        input_value = parse_input(input_text)
        if machine.input_schema is not None:
            machine.input_schema.check(input_value)
        del input_value  # checked: the first state reads the text (a Map's 10,000 items once)
        now = self.clock()
        step = Step(
            definition=machine.definition,
            machine=machine.name,
            name=name,
            execution_arn=self.arns.execution(machine.name, name),
            machine_arn=self.arns.state_machine(machine.name),
            execution_input=input_text,
            start_date=now,
            now=now,
            random=self.random,
            deadline=_deadline(machine.definition, now),
            time_scale=tested.time_scale,
        )
        step.begin(ROLE_ARN.format(account=self.arns.account))
        step.events[0] = self.tests.mark(step.events[0], tested)
        step.run()
        execution, created = await self._store.create_execution(
            NewExecution(
                machine=machine.name,
                name=name,
                definition_id=machine.definition_id,
                input=input_text,
                start_date=now,
                uid=self._uid(),
                progress=step.progress(),
                events=tuple(step.events),
                cursors=tuple(step.children),
            )
        )
        if not created:
            same = execution.status == RUNNING and same_input(
                execution.input, parse_input(input_text)
            )
            if not same:
                raise ExecutionAlreadyExists(
                    f"Execution Already Exists: '{self.arns.execution(machine.name, name)}'"
                )
            return Started(execution=execution, created=False)
        self.tests.remember(execution.id, tested)
        log.info(
            "execution.started",
            machine=machine.name,
            execution=name,
            state=execution.state,
            due_at=execution.due_at,
        )
        self._schedule(execution)
        return Started(execution=execution, created=True)

    async def stop_execution(
        self, machine_name: str, name: str, error: str | None, cause: str | None
    ) -> Execution:
        if error is not None and len(error) > MAX_ERROR_LENGTH:
            raise ValidationException("error: at most 256 characters")
        if cause is not None and len(cause) > MAX_CAUSE_LENGTH:
            raise ValidationException("cause: at most 32768 characters")
        while True:
            execution = await self._store.find_execution(machine_name, name)
            if execution is None:
                raise ExecutionDoesNotExist(
                    f"Execution Does Not Exist: '{self.arns.execution(machine_name, name)}'"
                )
            if execution.status != RUNNING:
                return execution
            now = self.clock()
            children = await self._store.running_cursors(execution.id)
            stopped = await self._store.commit(
                Transition(
                    base=execution,
                    progress=replace(
                        execution.progress,
                        status=ABORTED,
                        stop_date=now,
                        phase=None,
                        due_at=None,
                        pending=Resume(fanout=execution.fanout),
                        error=error,
                        cause=cause,
                    ),
                    events=(
                        _event("ExecutionAborted", history.execution_aborted(error, cause), now),
                    ),
                    cursors=tuple(aborted(children, ROOT, now)),
                )
            )
            if stopped is not None:
                self._rows.pop(stopped.id, None)
                self._tree_rows.pop(stopped.id, None)
                self.nested.closed(stopped)
                self._observer.execution_closed(stopped, self.arns.execution(machine_name, name))
                log.info("execution.aborted", machine=machine_name, execution=name)
                return stopped

    async def update_execution(
        self, machine_name: str, name: str, input_text: str, *, merge: bool, by: str
    ) -> Execution:
        """Replace (or `merge` into) a running execution's input and data, in one commit; a
        Wait it is in is worked out again (stepd.engine.updates). `by` says who asked."""
        given = parse_input(input_text)
        while True:
            execution = await self._store.find_execution(machine_name, name)
            if execution is None:
                raise ExecutionDoesNotExist(
                    f"Execution Does Not Exist: '{self.arns.execution(machine_name, name)}'"
                )
            transition = await self.preview_update(execution, given, merge=merge, by=by)
            updated = await self._store.commit(transition)
            if updated is not None:
                log.info(
                    "execution.updated",
                    machine=machine_name,
                    execution=name,
                    state=updated.state,
                    due_at=updated.due_at,
                    previous_due_at=execution.due_at,
                    by=by,
                )
                self._schedule(updated)
                return updated

    async def preview_update(
        self, execution: Execution, given: Any, *, merge: bool, by: str
    ) -> Transition:
        """The transition an update of `execution` (as read) to `given` would commit; raises
        as `update_execution` does when it would be refused. Commits nothing."""
        definition = await self._definition(execution.definition_id)
        machine = self._serving(execution.machine)
        return update(
            self._step(execution, definition, self.clock()),
            given,
            merge=merge,
            by=by,
            schema=machine.input_schema if machine is not None else None,
        )

    def redrive_refusal(self, execution: Execution) -> str | None:
        """Why RedriveExecution would refuse `execution` now (AWS's redriveStatusReason);
        None when it would take it up again."""
        return refusal(execution, self.clock())

    async def redrive_execution(
        self, machine_name: str, name: str, client_token: str | None = None
    ) -> Execution:
        """Take a FAILED, TIMED_OUT or ABORTED execution up again where it stood, in one
        commit; the same `client_token` again, within AWS's 15 minutes, answers with the
        redrive it made."""
        while True:
            execution = await self._store.find_execution(machine_name, name)
            if execution is None:
                raise ExecutionDoesNotExist(
                    f"Execution Does Not Exist: '{self.arns.execution(machine_name, name)}'"
                )
            now = self.clock()
            if _same_redrive(execution, client_token, now):
                return execution
            reason = refusal(execution, now)
            if reason is not None:
                raise ExecutionNotRedrivable(reason)

            async def children_of(parent: str, execution_id: int = execution.id) -> list[Cursor]:
                return await self._store.finished_children(
                    execution_id, parent, unsucceeded_only=True
                )

            progress, cursors = await revive(execution.progress, ROOT, children_of, now)
            count = execution.redrive_count + 1
            runs = await self._map_runs_redriven(execution.id, [progress, *cursors], count, now)
            redriven = await self._store.commit(
                Transition(
                    base=execution,
                    progress=progress,
                    events=(
                        _event("ExecutionRedriven", history.execution_redriven(count), now),
                        *runs,
                    ),
                    cursors=tuple(cursors),
                    redrive=Redrive(count=count, date=now, token=client_token),
                )
            )
            if redriven is not None:
                log.info(
                    "execution.redriven",
                    machine=machine_name,
                    execution=name,
                    state=redriven.state,
                    redrive_count=count,
                    children=len(cursors),
                )
                self._schedule(redriven)
                return redriven

    async def _map_runs_redriven(
        self, execution_id: int, revived: Sequence[Progress], count: int, now: float
    ) -> list[NewEvent]:
        """MapRunRedriven for each Map Run a redrive takes up again (a revived Map state whose
        fan-out runs one), with the run's own count of redrives (`count` is the
        execution's)."""
        events: list[NewEvent] = []
        for fan in (p.fanout for p in revived):
            if fan is None or fan.map_run is None:
                continue
            found = await self._store.history(
                execution_id, reverse=False, limit=1, after=fan.map_run - 1
            )
            if found and found[0].type == "MapRunStarted":
                details = history.map_run_redriven(found[0].id, found[0].details, count)
                events.append(_event("MapRunRedriven", details, now))
        return events

    # -- callbacks (.waitForTaskToken) -------------------------------------------------

    async def send_task_success(self, token: str, output_text: str) -> None:
        """SendTaskSuccess: `output_text` (JSON) is the result of the task `token` names."""
        try:
            output = jsontext.STRICT.decode(output_text)
        except ValueError:
            raise InvalidOutput("Invalid Output: the output is not valid JSON") from None
        if may_hold_surrogate(output_text) and unpaired_surrogate(output):
            raise InvalidOutput(
                "Invalid Output: a string in it holds an unpaired UTF-16 surrogate"
                " (an escape such as \\ud800 alone): it is not Unicode text"
            )
        if len(output_text.encode()) > MAX_CALLBACK_OUTPUT_BYTES:
            raise InvalidOutput(
                f"Invalid Output: the output is over {MAX_CALLBACK_OUTPUT_BYTES} bytes"
            )
        await self.complete_task(token, output)

    async def complete_task(self, token: str, result: Any) -> None:
        """The task `token` names succeeds with `result` (a JSON value as stepd holds it: a
        child execution's output for its waiting parent), with no checks of text that came
        from outside."""
        await self._callback(token, lambda step: step.task_done(TaskOutcome(result=result)))

    async def send_task_failure(self, token: str, error: str | None, cause: str | None) -> None:
        """SendTaskFailure: the task `token` names fails with `error` and `cause`."""
        if error is not None and len(error) > MAX_ERROR_LENGTH:
            raise ValidationException("error: at most 256 characters")
        if cause is not None and len(cause) > MAX_CAUSE_LENGTH:
            raise ValidationException("cause: at most 32768 characters")
        await self._callback(
            token, lambda step: step.task_done(TaskOutcome(error=error or "", cause=cause))
        )

    async def send_task_heartbeat(self, token: str) -> None:
        """SendTaskHeartbeat: the task `token` names is still at work."""
        await self._callback(token, lambda step: step.heartbeat(), settles=False)

    async def activity_taken(self, token: str, worker: str | None) -> None:
        """A worker took the activity task `token` names (ActivityStarted, a heartbeat)."""
        await self._callback(token, lambda step: step.activity_taken(worker), settles=False)

    async def _callback(
        self, token: str, settle: Callable[[Step], None], *, settles: bool = True
    ) -> None:
        """Settle (or, not `settles`, heartbeat) the task `token` names, in one commit."""
        target = token_target(token)
        if target is None:
            raise InvalidToken("Invalid Token: 'Invalid token'")
        machine_name, name, cursor_id = target
        while True:
            found = await self._store.find_execution(machine_name, name)
            if found is None:
                raise TaskDoesNotExist("Task Does Not Exist: 'Provided task does not exist'")
            await self.tests.load(self._store, found.id)
            async with self._lock(found.id):
                committed = await self._settle(found.id, cursor_id, token, settle, settles)
            if committed is None:
                continue  # changed meanwhile: look again
            self._log_closed(committed)
            if cursor_id == ROOT:
                self._schedule(committed)
            else:
                self._queue.push(committed.id, self.clock())
            return

    async def _settle(
        self,
        execution_id: int,
        cursor_id: str,
        token: str,
        settle: Callable[[Step], None],
        settles: bool,
    ) -> Execution | None:
        execution = await self._store.get_execution(execution_id)
        progress: Progress | None = execution
        if execution is not None and cursor_id != ROOT:
            progress = await self._store.get_cursor(execution_id, cursor_id)
        task = progress.task if progress is not None else None
        now = self.clock()
        deadline = None if task is None else task.callback_deadline()
        if (
            execution is None
            or execution.status != RUNNING
            or progress is None
            or progress.status != RUNNING
            or progress.phase != PHASE_TASK
            or task is None
            or not task.sent
            or not same_token(task.token, token)
            or (task.awaiting_callback and deadline is not None and deadline <= now)
        ):
            raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
        self._rows.pop(execution_id, None)
        self._tree_rows.pop(execution_id, None)
        definition = await self._definition(execution.definition_id)
        if cursor_id == ROOT:
            step = self._step(execution, definition, now)
        else:
            children = await self._store.running_cursors(execution_id)
            work = self._work(execution, definition, children, now)
            step = work.step(cursor_id)
        settle(step)
        if settles:
            step.run()
        if cursor_id == ROOT:
            return await self._store.commit(step.transition())
        work.save(cursor_id, step)
        return await self._store.commit(work.transition())

    # -- housekeeping ----------------------------------------------------------------

    async def purge(self, retention_seconds: float) -> int:
        """Delete executions closed longer ago than `retention_seconds`, a batch at a time."""
        if retention_seconds <= 0:
            return 0
        before = self.clock() - retention_seconds
        deleted = 0
        while True:
            batch = await self._store.purge_closed(before, PURGE_BATCH)
            deleted += batch
            if batch < PURGE_BATCH:
                break
        if deleted:
            log.info("executions.purged", count=deleted, closed_before=before)
        return deleted

    # -- running ---------------------------------------------------------------------

    def _schedule(self, execution: Execution) -> None:
        self._rows.pop(execution.id, None)
        self._tree_rows.pop(execution.id, None)
        if execution.status == RUNNING and execution.due_at is not None:
            if execution.due_at <= self.clock() + ROW_CACHE_SECONDS:
                self._rows[execution.id] = execution
            self._arm(execution.id, execution.due_at)

    async def advance(self, execution_id: int) -> Later | None:
        """Carry out whatever is due for one execution, as far as it goes without waiting;
        what is left to do once other due work went first (recording a task's answer while
        other calls are due), if any."""
        execution = self._rows.pop(execution_id, None)
        if execution is None:
            execution = await self._store.get_execution(execution_id)
        if execution is None:
            return None
        if self.tests.enabled:
            await self.tests.load(self._store, execution_id)
        # the log lines of this step carry these
        token = logs.bind(
            machine=execution.machine, execution=execution.name, state=execution.state
        )
        try:
            return await self._advance(execution)
        finally:
            logs.reset(token)

    def _later(self, answered: _Answered) -> Later:
        """Commit `answered`'s outcome and go on from there, when the queue gets to it."""

        async def record() -> Later | None:
            execution = answered.execution
            token = logs.bind(
                machine=execution.machine, execution=execution.name, state=execution.state
            )
            try:
                updated = await self._record(answered)
                read_again = updated is None
                if read_again:  # changed meanwhile (stopped): look again
                    updated = await self._store.get_execution(execution.id)
                return await self._advance(updated, read_again=read_again)
            finally:
                logs.reset(token)

        return record

    async def _advance(  # noqa: C901 - one loop, each branch a kind of work
        self, execution: Execution | None, *, read_again: bool = False
    ) -> Later | None:
        """advance's loop; log lines carry the state each step of it is at. `read_again`:
        `execution` was read again after a commit of this node's was refused."""
        logged_state = execution.state if execution else None
        while execution is not None and execution.status == RUNNING and self._queue.accepting:
            if read_again:
                read_again = False
                if await self._held_elsewhere(execution):
                    return None
            due_at = execution.due_at
            if due_at is None:
                return None
            now = self.clock()
            if due_at > now:
                self._schedule(execution)
                return None
            definition = self._definitions.get(execution.definition_id)
            if definition is None:
                definition = await self._definition(execution.definition_id)
            deadline = _deadline(definition, _began(execution))
            if deadline is not None and now >= deadline:
                self._log_closed(await self._time_out(execution))
                return None
            if execution.phase == PHASE_FANOUT:
                execution = await self._run_tree(execution.id, definition)
                continue
            step = self._step(execution, definition, now)
            if execution.phase != PHASE_TASK:
                step.run()
            due_now = step.due_at is not None and step.due_at <= now
            task_now = step.status == RUNNING and step.phase == PHASE_TASK and due_now
            state = step.state if task_now else execution.state
            if state != logged_state:
                logged_state = state
                logs.bind(state=state)
            if task_now and step.task.awaiting_callback:  # no callback came in time
                step.callback_timed_out()
                step.run()
                updated = await self._store.commit(step.transition())
                self._log_closed(updated)
            elif task_now:
                url = self._task_url(execution, step.state, step.task)
                limit = self._host_wait_limit(url, step) if url else None
                if url is not None and limit is not None:
                    await self._wait_for_host(execution, step, url, limit)
                    return None
                # a task due now: its intent goes into the commit that reached it
                answered = await self._call_task(execution, step, url)
                if answered is not None and self._queue.waiting:
                    return self._later(answered)  # the calls due go out first
                updated = None if answered is None else await self._record(answered)
            else:
                updated = await self._store.commit(step.transition())
                self._log_closed(updated)
            if updated is None:  # changed meanwhile (stopped): look again
                updated = await self._store.get_execution(execution.id)
                read_again = True
            execution = updated
        return None

    async def _held_elsewhere(self, execution: Execution) -> bool:
        """Whether another node runs `execution` now (read again after a commit of this
        node's was refused; its call in flight, if any, is that node's). Then this node takes
        it only through a claim, when its timer wakes it, and keeps no copy of the row (a
        call in flight is sent again without a commit)."""
        if await self._store.held_here(execution.id):
            return False
        self._rows.pop(execution.id, None)
        if execution.due_at is not None:
            self._arm(execution.id, execution.due_at)
        return True

    # -- hosts that are down ---------------------------------------------------------

    def _task_url(self, execution: Execution, state: str | None, task: TaskCall) -> str | None:
        """Where `task` goes: by its state's name or its Resource in the config, else the
        endpoint stored for its state with the execution's definition (served with it by
        this node or another before the config named it no more)."""
        if is_http_invoke(task.resource):  # an HTTP Task says where it goes: its ApiEndpoint
            return endpoint_of(json.loads(task.payload)) or HTTP_INVOKE
        machine = self._serving(execution.machine)
        if machine is None:  # another node's machine: the endpoint it stored for the state
            stored = self._stored_endpoints.get(execution.definition_id, {}).get(state or "")
            return None if stored is None else self._elsewhere.url(stored)
        functions: list[str] = []
        if is_lambda_invoke(task.resource):  # also by the function its Parameters name
            parameters = json.loads(task.payload)
            if names_a_function(parameters):
                functions = function_keys(parameters[FUNCTION_NAME])
        url = machine.endpoints.resolve(state or "", task.resource, functions)
        if url is None and state:
            stored = self._stored_endpoints.get(execution.definition_id, {}).get(state)
            url = None if stored is None else machine.endpoints.url(stored)
        return url

    @property
    def base_url(self) -> str:
        return self._elsewhere.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        """`[http] base_url`, checked by the config already."""
        self._elsewhere = EndpointMap(base_url=value, routes={})

    def _host_wait_limit(self, url: str, step: Step) -> float | None:
        """The machine's wait_for_host_seconds when the call should wait for its host: the host
        is down, the machine lets calls wait and this one has not waited its limit, and the
        state would retry the error the host gives (otherwise None: the call goes out, and its
        error comes at once)."""
        error = self._hosts.down_error(url)
        if error is None:
            return None
        machine = self._serving(step.machine)
        limit = machine.host_wait_limit(step.now, step.task.waiting_since) if machine else None
        if limit is None or not step.would_retry(error):
            return None
        return limit

    async def _wait_for_host(
        self, execution: Execution, step: Step, url: str, limit: float
    ) -> None:
        """Commit what `step` reached (the Task state entered, when the wait began), then keep
        the call until the host is back; it spends none of its attempts meanwhile."""
        if step.task.waiting_since is None:
            step.pending = replace(step.task, waiting_since=step.now)
        if step.events or step.pending != execution.pending:
            committed = await self._store.commit(step.transition())
            if committed is None:  # changed meanwhile (stopped): look again
                self._queue.push(execution.id, self.clock())
                return
            execution = committed
        task = execution.task
        if task is None or task.waiting_since is None:
            raise TypeError(f"the state '{execution.state}' has no call waiting for its host")
        first_due = task.first_due if task.first_due is not None else task.due
        until = task.waiting_since + limit
        self._queue.hold(execution.id)
        if not self._hosts.wait(url, execution.id, first_due, until):
            self._queue.release(execution.id, first_due)
            return
        self._rows[execution.id] = execution
        log.debug("task.waiting_for_host", state=execution.state, url=url)

    async def _probe(self, url: str) -> int | None:
        return await self._caller.probe(url, min(self.task_timeout_seconds, PROBE_TIMEOUT_SECONDS))

    def _step(self, execution: Execution, definition: Mapping[str, Any], now: float) -> Step:
        return Step(
            definition=definition,
            machine=execution.machine,
            name=execution.name,
            execution_arn=self.arns.execution(execution.machine, execution.name),
            machine_arn=self.arns.state_machine(execution.machine),
            execution_input=execution.input,
            start_date=execution.start_date,
            now=now,
            random=self.random,
            row=execution,
            deadline=_deadline(definition, _began(execution)),
            redrive_count=execution.redrive_count,
            redrive_date=execution.redrive_date,
            time_scale=self.tests.time_scale(execution.id),
        )

    def _cursor_step(
        self,
        execution: Execution,
        definition: Mapping[str, Any],
        now: float,
        **cursor: Any,
    ) -> Step:
        return Step(
            definition=definition,
            machine=execution.machine,
            name=execution.name,
            execution_arn=self.arns.execution(execution.machine, execution.name),
            machine_arn=self.arns.state_machine(execution.machine),
            execution_input=execution.input,
            start_date=execution.start_date,
            now=now,
            random=self.random,
            redrive_count=execution.redrive_count,
            redrive_date=execution.redrive_date,
            time_scale=self.tests.time_scale(execution.id),
            **cursor,
        )

    async def _time_out(self, execution: Execution) -> Execution | None:
        """The execution ran past its TimeoutSeconds: TIMED_OUT, every cursor stopped."""
        now = self.clock()
        children = await self._store.running_cursors(execution.id)
        timed_out = await self._store.commit(
            Transition(
                base=execution,
                progress=Progress(
                    status=TIMED_OUT,
                    state=execution.state,
                    data=execution.data,
                    state_entered_event=execution.state_entered_event,
                    state_entered_at=execution.state_entered_at,
                    attempt=execution.attempt,
                    stop_date=now,
                    error=STATES_TIMEOUT,
                    pending=Resume(fanout=execution.fanout),
                    variables=execution.variables,  # a redrive goes on with them
                ),
                events=(
                    _event(
                        "ExecutionTimedOut",
                        history.execution_timed_out(STATES_TIMEOUT, None),
                        now,
                    ),
                ),
                cursors=tuple(aborted(children, ROOT, now)),
            )
        )
        if timed_out is not None:
            log.info("execution.timed_out")
        return timed_out

    # -- Parallel and Map: several cursors -----------------------------------------------

    def _lock(self, execution_id: int) -> asyncio.Lock:
        lock = self._locks.get(execution_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[execution_id] = lock
        return lock

    async def _run_tree(  # noqa: C901 - one loop over rounds, each step named
        self, execution_id: int, definition: Mapping[str, Any]
    ) -> Execution | None:
        """Run every due cursor of an execution whose root runs children, a commit at a time,
        until nothing is due; the execution once its root has left its Parallel or Map state
        (to go on without cursors), else None."""
        async with self._lock(execution_id):
            execution, children = await self._tree_row(execution_id)
            while (
                execution is not None
                and execution.status == RUNNING
                and execution.phase == PHASE_FANOUT
                and self._queue.accepting
            ):
                now = self.clock()
                deadline = _deadline(definition, _began(execution))
                if deadline is not None and now >= deadline:
                    self._log_closed(await self._time_out(execution))
                    return None
                work = self._work(execution, definition, children, now)
                flying = self._in_flight.get(execution_id, set()) | self._host_waits.get(
                    execution_id, set()
                )
                due = [
                    cursor_id
                    for cursor_id, progress in work.running()
                    if cursor_id not in flying
                    and (own := work.own_due(progress)) is not None
                    and own <= now
                ]
                if not due:
                    self._arm_tree(work, flying)
                    return None
                fanouts = [c for c in due if work.progress_of(c).phase == PHASE_FANOUT]
                if fanouts:  # first, with the store as committed: start children, gather
                    for cursor_id in fanouts:
                        if work.live(cursor_id):
                            await self._fanout_due(work, cursor_id)
                else:
                    for cursor_id in due[:MAX_CURSORS_PER_TRANSITION]:
                        if work.live(cursor_id):
                            self._step_cursor(work, cursor_id)
                committed = await self._store.commit(work.transition())
                self._keep_tree_row(execution_id, committed, work)
                if committed is None:  # changed meanwhile (stopped): look again
                    execution = await self._store.get_execution(execution_id)
                    children = await self._store.running_cursors(execution_id)
                    continue
                execution = committed
                self._log_closed(execution)
                for cursor_id, resend in work.calls:
                    cursor = work.cursors.get(cursor_id)
                    if cursor is not None and cursor.status == RUNNING:
                        self._spawn(execution, cursor, resend=resend)
                for cursor_id, url, limit in work.host_waits:
                    self._child_waits(work, cursor_id, url, limit)
                children = [c for c in work.cursors.values() if c.status == RUNNING]
            if execution is None or execution.phase != PHASE_FANOUT:
                self._tree_rows.pop(execution_id, None)  # no longer running children
            if execution is not None and execution.status == RUNNING:
                return execution
            return None

    def _work(
        self,
        execution: Execution,
        definition: Mapping[str, Any],
        children: list[Cursor],
        now: float,
    ) -> Work:
        return Work(
            execution,
            definition,
            children,
            now=now,
            make_step=self._cursor_step,
            deadline=_deadline(definition, _began(execution)),
        )

    async def _tree_row(self, execution_id: int) -> tuple[Execution | None, list[Cursor]]:
        """The execution and its running children as this engine last committed them while it
        ran children (under its lock), or as the store has them."""
        kept = self._tree_rows.get(execution_id)
        if kept is not None:
            return kept[0], list(kept[1])
        execution = await self._store.get_execution(execution_id)
        return execution, await self._store.running_cursors(execution_id)

    def _keep_tree_row(self, execution_id: int, committed: Execution | None, work: Work) -> None:
        """Keep what a commit of `work` under the execution's lock left, while it runs
        children; a commit refused (changed meanwhile) drops it, to be read again."""
        if committed is not None and committed.status == RUNNING:
            running = [c for c in work.cursors.values() if c.status == RUNNING]
            self._tree_rows[execution_id] = (committed, running)
        else:
            self._tree_rows.pop(execution_id, None)

    def _arm_tree(self, work: Work, flying: set[str]) -> None:
        """Wake the execution when its next cursor (not waiting for a call) is due."""
        dues = [
            due
            for cursor_id, progress in work.running()
            if cursor_id not in flying and (due := work.own_due(progress)) is not None
        ]
        if work.deadline is not None:
            dues.append(work.deadline)
        if dues:
            self._arm(work.execution.id, min(dues))

    async def _fanout_due(self, work: Work, cursor_id: str) -> None:
        """A Parallel or Map state has work: retry it, gather its results, or start children."""
        step = work.step(cursor_id)
        fan = step.fanout
        execution_id = work.execution.id
        if fan.retry_at is not None:
            step.again()
        elif fan.complete:
            results = await self._store.children_output(execution_id, cursor_id)
            work.prune(cursor_id)
            step.fanout_succeeded(JsonText(results))
        else:
            room = min(fan.total, fan.next_slot + fan.limit - fan.running)
            made: dict[int, Cursor] = {}  # a window of children created in this transition
            for slot in range(fan.next_slot, room):
                queued = made.pop(slot, None) or await self._store.get_cursor(
                    execution_id, child_id(cursor_id, fan.started_event, slot)
                )
                if queued is None:
                    try:
                        made = {c.slot: c for c in step.more_children(slot)}
                    except Exception as exc:  # the state fails as any step with States.Runtime
                        log.exception("step.unexpected_error", **step.log_fields())
                        work.fail_fanout(cursor_id, step, STATES_RUNTIME, f"{exc}")
                        return
                    queued = made.pop(slot)
                work.put(step.start_child(queued))
            for queued in made.values():  # the rest of the window waits for slots
                work.put(queued)
        work.save(cursor_id, step)

    def _step_cursor(self, work: Work, cursor_id: str) -> None:
        """Run one child as far as it goes now; a task it reaches is called after the commit."""
        step = work.step(cursor_id)
        if step.phase != PHASE_TASK:
            step.run()
        due_now = step.due_at is not None and step.due_at <= work.now
        if step.status == RUNNING and step.phase == PHASE_TASK and due_now:
            if step.task.awaiting_callback:  # no callback came in time
                step.callback_timed_out()
                step.run()
                work.save(cursor_id, step)
                return
            url = self._task_url(work.execution, step.state, step.task)
            limit = self._host_wait_limit(url, step) if url else None
            if url is not None and limit is not None:  # its host is down: wait, as a root does
                if step.task.waiting_since is None:
                    step.pending = replace(step.task, waiting_since=step.now)
                work.host_waits.append((cursor_id, url, limit))
                work.save(cursor_id, step)
                return
            resend = step.task.sent
            late = False if resend else self._note_lateness(step)
            if not resend:
                step.task_sent(self.arns.region)
            if late:  # the machine's late policy fails it instead of calling
                step.task_done(self._late_outcome(work.execution.machine))
                step.run()
            else:
                work.calls.append((cursor_id, resend))
        work.save(cursor_id, step)

    def _child_waits(self, work: Work, cursor_id: str, url: str, limit: float) -> None:
        """Keep the committed call of child `cursor_id` until its host is back (or its wait
        reached `limit`): the execution's other cursors go on meanwhile."""
        cursor = work.cursors.get(cursor_id)
        task = cursor.task if cursor is not None and cursor.status == RUNNING else None
        if task is None or task.waiting_since is None:
            return
        first_due = task.first_due if task.first_due is not None else task.due
        execution_id = work.execution.id
        if self._hosts.wait(url, execution_id, first_due, task.waiting_since + limit):
            self._host_waits.setdefault(execution_id, set()).add(cursor_id)
            log.debug("task.waiting_for_host", cursor=cursor_id, url=url)

    def _host_back(self, execution_id: int, due_at: float) -> None:
        """The host an execution's call waited for is up (or the wait reached its limit): the
        execution, and any of its children that waited, go back to the queue."""
        self._host_waits.pop(execution_id, None)
        self._queue.release(execution_id, due_at)

    def _spawn(self, execution: Execution, cursor: Cursor, *, resend: bool) -> None:
        self._in_flight.setdefault(execution.id, set()).add(cursor.id)
        task = asyncio.create_task(
            self._child_call(execution, cursor, resend=resend),
            name=f"stepd-call-{execution.id}{cursor.id}",
        )
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _child_call(self, execution: Execution, cursor: Cursor, *, resend: bool) -> None:
        """Call a child's task (its intent is committed), then commit its outcome."""
        token = logs.bind(machine=execution.machine, execution=execution.name, state=cursor.state)
        try:
            outcome = await self._child_send(execution, cursor, resend=resend)
            if outcome is not None:
                await self._child_done(execution.id, cursor, outcome)
        except Exception:
            log.exception("engine.child_call_failed", cursor=cursor.id)
        finally:
            logs.reset(token)
            flying = self._in_flight.get(execution.id)
            if flying is not None:
                flying.discard(cursor.id)
                if not flying:
                    del self._in_flight[execution.id]
        self._queue.push(execution.id, self.clock())

    async def _child_send(
        self, execution: Execution, cursor: Cursor, *, resend: bool
    ) -> TaskOutcome | None:
        task = cursor.task
        if task is None:
            return None
        async with self._call_slots:
            if not self._queue.accepting:
                return None  # stopping: sent again, with its key, after the next start
            if resend:
                self.stats.resends += 1
            url = self._task_url(execution, cursor.state, task)
            key = idempotency_key(execution, cursor.state_entered_event)
            inside = await self._answer_inside(execution, cursor.state, cursor.attempt, task, key)
            return inside or await self._send_call(
                url, task, key, state=cursor.state, attempt=cursor.attempt, resend=resend
            )

    async def _child_done(self, execution_id: int, sent: Cursor, outcome: TaskOutcome) -> None:
        """Commit a child's answer; answers that come in while another is being committed
        wait for the execution's lock together and go into one commit (each call returns
        once its answer is committed)."""
        await self.tests.load(self._store, execution_id)
        self._answers.setdefault(execution_id, []).append((sent, outcome))
        async with self._lock(execution_id):
            answers = self._answers.pop(execution_id, None)
            if answers:  # else recorded with those before it, by the caller that held the lock
                await self._record_children(execution_id, answers)

    async def _record_children(
        self, execution_id: int, answers: list[tuple[Cursor, TaskOutcome]]
    ) -> None:
        """Commit `answers` (children's task outcomes) in one transition, under the lock."""
        while True:
            execution, children = await self._tree_row(execution_id)
            if execution is None or execution.status != RUNNING:
                log.info("task.result_discarded", reason="the child stopped meanwhile")
                return
            definition = await self._definition(execution.definition_id)
            work = self._work(execution, definition, children, self.clock())
            kept = {c.id for c in children}
            steps = await self._answer_children(work, kept, answers)
            if steps is None:  # what was kept is behind: read again
                self._tree_rows.pop(execution_id, None)
                continue
            if not steps:
                return
            committed = await self._store.commit(work.transition())
            self._keep_tree_row(execution_id, committed, work)
            if committed is not None:
                for sent, step in steps:
                    waiting = isinstance(step.pending, TaskCall) and step.pending.awaiting_callback
                    if step.status == RUNNING and waiting:
                        log.info("task.awaiting_callback", cursor=sent.id, until=step.due_at)
                self._log_closed(committed)
                return

    async def _answer_children(
        self, work: Work, kept: set[str], answers: list[tuple[Cursor, TaskOutcome]]
    ) -> list[tuple[Cursor, Step]] | None:
        """Step each child of `answers` still waiting for its answer in `work`; the steps, or
        None when a child the store has waiting is missing from `kept`, the running children
        `work` began with (kept rows behind)."""
        steps: list[tuple[Cursor, Step]] = []
        for sent, outcome in answers:
            # as last committed (a change made elsewhere fails the commit: read again)
            cursor = work.cursors.get(sent.id)
            if sent.id not in kept:
                stored = await self._store.get_cursor(work.execution.id, sent.id)
                if _same_child_call(sent, stored):
                    return None
            if not _same_child_call(sent, cursor):
                log.info("task.result_discarded", reason="the child stopped meanwhile")
                continue
            step = work.step(sent.id)
            if step.task.token is not None and outcome.error is None and not outcome.final:
                # the answer is not the result (TaskSubmitted): the callback is
                step.await_callback(outcome.result)
            else:
                step.task_done(outcome)
                step.run()
            work.save(sent.id, step)
            steps.append((sent, step))
        return steps

    def _note_lateness(self, step: Step) -> bool:
        """Record how late a task call starts against the instant it was due (the end of
        the wait that led to it); True when the machine's policy fails it."""
        due = step.task.due
        lateness = max(0.0, step.now - float(due))
        self.stats.steps += 1
        self.stats.worst_lateness = max(self.stats.worst_lateness, lateness)
        machine = self._serving(step.machine)
        late = machine is not None and machine.is_late(lateness)
        self._observer.step_started(lateness, late=late)
        if machine is None or not late:
            return False
        self.stats.steps_late += 1
        log.warning(
            "step.late",
            state=step.state,
            lateness_seconds=round(lateness, 3),
            threshold_seconds=machine.late_threshold_seconds,
            policy=machine.late_policy,
        )
        return machine.fails_when_late

    def _late_outcome(self, machine_name: str) -> TaskOutcome:
        """What a task later than its machine allows comes to, under late_policy = "fail"."""
        machine = self._serving(machine_name)
        return TaskOutcome(
            error=LATE_ERROR,
            cause=f"The step ran later than the machine's threshold of "
            f"{machine.late_threshold_seconds if machine else 0} s.",
        )

    async def _call_task(
        self, execution: Execution, step: Step, url: str | None
    ) -> _Answered | None:
        """Send the task `step` is at: commit its intent (with whatever `step` already holds)
        unless a crash left it sent, and call; the answer, to `_record`. None when the
        execution changed before the intent was committed."""
        resend = step.task.sent
        late = False if resend else self._note_lateness(step)
        if not resend:
            step.task_sent(self.arns.region)
            execution_or_none = await self._store.commit(step.transition())
            if execution_or_none is None:
                return None
            execution = execution_or_none
        else:
            self.stats.resends += 1
        if late:
            outcome = self._late_outcome(execution.machine)
        else:
            async with self._call_slots:  # one limit for every call, children's too
                outcome = await self._send(execution, url, resend=resend)
        return _Answered(execution=execution, definition=step.definition, outcome=outcome)

    async def _record(self, answered: _Answered) -> Execution | None:
        """Commit a task's outcome and what follows from it at once."""
        outcome = answered.outcome
        execution = sent = answered.execution
        definition = answered.definition
        while True:
            step = self._step(execution, definition, self.clock())
            if step.task.token is not None and outcome.error is None and not outcome.final:
                # the answer is not the result (TaskSubmitted): the callback is
                step.await_callback(outcome.result)
            else:
                step.task_done(outcome)
                step.run()
            updated = await self._store.commit(step.transition())
            if updated is not None:
                break
            # updated meanwhile (Stepd.UpdateExecution): the call still stands, apply its
            # outcome to what is stored; stopped or moved on: the outcome is not wanted
            again = await self._store.get_execution(execution.id)
            if again is None or not _same_call(sent, again):
                break
            execution = again
        if updated is None:
            log.info("task.result_discarded", reason="execution changed while the call ran")
        elif updated.task is not None and updated.task.awaiting_callback:
            log.info("task.awaiting_callback", until=updated.due_at)
        self._log_closed(updated)
        return updated

    async def _send(self, execution: Execution, url: str | None, *, resend: bool) -> TaskOutcome:
        task = execution.task
        if task is None:
            raise TypeError(f"the state '{execution.state}' has no task call pending")
        key = idempotency_key(execution)
        if self._may_answer_inside(task):
            inside = await self._answer_inside(
                execution, execution.state, execution.attempt, task, key
            )
            if inside is not None:
                return inside
        return await self._send_call(
            url,
            task,
            key,
            state=execution.state,
            attempt=execution.attempt,
            resend=resend,
        )

    def _may_answer_inside(self, task: TaskCall) -> bool:
        """Whether stepd may answer `task` itself (see `_answer_inside`)."""
        resource = task.resource
        return (
            self.tests.enabled
            or is_activity(resource)
            or start_execution_mode(resource) is not None
        )

    async def _answer_inside(
        self, execution: Execution, state: str | None, attempt: int, task: TaskCall, key: str
    ) -> TaskOutcome | None:
        """The outcome of a task stepd answers itself (a mocked one, testing; an activity's,
        queued for a worker; a nested execution's start), or None: it is called."""
        mocked = self.tests.mocked(execution.id, execution.machine, state or "", attempt)
        if mocked is not None:
            return mocked
        if is_activity(task.resource):
            return await self.activities.queue(task)
        mode = start_execution_mode(task.resource)
        if mode is not None:
            return await self.nested.call(execution, task, key=key, mode=mode, attempt=attempt)
        return None

    async def start_child(self, machine: str, name: str, input_text: str) -> Execution:
        """Start an execution for a Task state (states:startExecution); the one running under
        that name with that input, if there is one."""
        return (await self.start_execution(machine, name, input_text)).execution

    async def _send_call(
        self,
        url: str | None,
        task: TaskCall,
        key: str,
        *,
        state: str | None,
        attempt: int,
        resend: bool,
    ) -> TaskOutcome:
        if url is None:
            return TaskOutcome(
                error=STATES_RUNTIME,
                cause=f"No endpoint is configured for the Task state '{state}' "
                f"(Resource {resource_text(task.resource)})",
            )
        http_invoke = is_http_invoke(task.resource)
        # an HTTP Task may take AWS's 60 s, or the longer [http] timeout_seconds if one is set
        timeout = self.task_timeout_seconds
        if http_invoke:
            timeout = max(timeout, HTTP_TASK_TIMEOUT_SECONDS)
        if task.timeout_seconds is not None:
            timeout = min(timeout, task.timeout_seconds)
        if resend:
            log.warning("task.resend", url=url, attempt=attempt, key=key)
        payload = json.loads(task.payload)
        invoke = is_lambda_invoke(task.resource) and names_a_function(payload)
        request_id = ""
        if invoke:
            request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{attempt}"))
            try:
                payload = lambda_payload(payload)
            except InvalidPayload as exc:  # AWS Lambda refuses it; no call is made
                return TaskOutcome(
                    error=exc.error, cause=invalid_payload_cause(exc.message, request_id)
                )
        self.stats.in_flight += 1
        try:
            outcome = await self._caller.call(
                TaskRequest(
                    url=url,
                    payload=payload,
                    idempotency_key=key,
                    timeout_seconds=timeout,
                    http_invoke=http_invoke,
                )
            )
        finally:
            self.stats.in_flight -= 1
        self._hosts.record(url, outcome)
        if invoke and outcome.ok and task.token is None:  # the function's answer, as AWS's
            outcome = replace(outcome, result=self._invoke_answer(outcome, request_id))
        outcome = _as_aws_reports(outcome, task, timeout)
        label = outcome.error or "success"
        self.stats.task_calls[label] = self.stats.task_calls.get(label, 0) + 1
        self._observer.task_called(outcome)
        return outcome

    def _invoke_answer(self, outcome: TaskOutcome, request_id: str) -> dict[str, Any]:
        """A `lambda:invoke` Task's result: the function's answer in AWS's Invoke answer, with
        the headers AWS records (the size of the body as it came, the time it came)."""
        now = self.clock()
        size = outcome.size
        if size is None:  # a caller that does not say (a test's): the answer as JSON text
            size = len(jsontext.strict(outcome.result).encode())
        return lambda_result(
            outcome.result,
            request_id=request_id,
            date=formatdate(now, usegmt=True),
            trace_id=f"Root=1-{int(now):08x}-{uuid.UUID(request_id).hex[:24]}",
            content_length=size,
        )

    def _log_closed(self, execution: Execution | None) -> None:
        if execution is not None and execution.status != RUNNING:
            self._rows.pop(execution.id, None)
            self._tree_rows.pop(execution.id, None)
            self.nested.closed(execution)
            self._observer.execution_closed(
                execution, self.arns.execution(execution.machine, execution.name)
            )
            log.info(
                "execution.closed",
                status=execution.status,
                error=execution.error,
                cause=execution.cause,
            )


def _same_child_call(sent: Cursor, now: Cursor | None) -> bool:
    """Whether the child `now` still waits for the answer to the call `sent` made."""
    return (
        now is not None
        and now.status == RUNNING
        and now.phase == PHASE_TASK
        and now.state_entered_event == sent.state_entered_event
        and now.attempt == sent.attempt
        and (now.task is None or now.task.answered_at is None)
    )


def _same_call(sent: Execution, now: Execution) -> bool:
    """Whether `now` still waits for the answer to the call `sent` made."""
    return (
        now.status == RUNNING
        and now.phase == PHASE_TASK
        and now.state_entered_event == sent.state_entered_event
        and now.attempt == sent.attempt
        and now.task is not None
        and now.task.sent
        and now.task.answered_at is None
    )


def _as_aws_reports(outcome: TaskOutcome, task: TaskCall, timeout: float) -> TaskOutcome:
    """The cause AWS gives: none for the state's own TimeoutSeconds running out (the log keeps
    stepd's detail), and AWS's words for a result over the size limit."""
    if outcome.error == STATES_TIMEOUT and task.timeout_seconds == timeout:
        log.info("task.timed_out", cause=outcome.cause, timeout_seconds=timeout)
        return replace(outcome, cause="")
    if outcome.error == STATES_DATA_LIMIT_EXCEEDED:
        return replace(outcome, cause=data_limit_cause(task.resource))
    return outcome


def data_limit_cause(resource: Any) -> str:
    """AWS's cause of States.DataLimitExceeded for a result too large: the state/task is the
    service of an `arn:aws:states:::service:api` Resource, else the Resource itself."""
    text = resource_text(resource)
    if text.startswith(SERVICE_PREFIX):
        text = text.removeprefix(SERVICE_PREFIX).split(":", 1)[0]
    return (
        f"The state/task '{text}' returned a result with a size exceeding the maximum number "
        "of bytes service limit."
    )


def _same_redrive(execution: Execution, client_token: str | None, now: float) -> bool:
    """Whether a redrive asked with `client_token` is the last one made (AWS keeps a token
    for 15 minutes)."""
    return (
        client_token is not None
        and execution.redrive_token == client_token
        and execution.redrive_date is not None
        and now - execution.redrive_date <= REDRIVE_TOKEN_SECONDS
    )


def _began(execution: Execution) -> float:
    """When the execution's current run began: its start, or its last redrive."""
    return execution.redrive_date if execution.redrive_date is not None else execution.start_date


def _deadline(definition: Mapping[str, Any], start_date: float) -> float | None:
    """When the definition's top-level TimeoutSeconds ends an execution started then."""
    seconds = definition.get("TimeoutSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0:
        return start_date + seconds
    return None


def _event(event_type: str, details: dict[str, Any], ts: float) -> NewEvent:
    return NewEvent(type=event_type, details=details, ts=ts)
