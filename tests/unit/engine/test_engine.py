"""The durable engine: transitions, intent before calls, stable keys, stops and restarts.

The store is `MemoryStore` (held to the SQLite store's contract by tests/unit/store), the
classroom server is `FakeCaller`, and the clock is a fake.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from tests.unit.engine.engine_support import new_engine

from stepd.asl import interpreter
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import LATE_FAIL, Machine
from stepd.errors import (
    ExecutionAlreadyExists,
    InvalidExecutionInput,
    InvalidName,
    StateMachineDoesNotExist,
)
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.caller import TaskOutcome
from stepd.tasks.endpoints import EndpointMap
from stepd.tasks.keys import idempotency_key
from stepd.testing import FakeCaller

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z

CLASSROOM = {
    "StartAt": "RecordingWait",
    "States": {
        "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
        "StartRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:1:function:start",
            "ResultPath": None,
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 2}],
            "Next": "PingWait",
        },
        "PingWait": {"Type": "Wait", "Seconds": 60, "Next": "StopRecording"},
        "StopRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:1:function:stop",
            "ResultPath": None,
            "End": True,
        },
    },
}
INPUT = json.dumps({"start": "2027-01-15T08:00:10Z", "end": "2027-01-15T09:00:00Z"})

UID = "u1"  # every execution's uid here: keys read <machine>/<name>/u1/<event>


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _machine(late_policy: str = "run", *, stored: bool = True) -> Machine:
    """The classroom machine; `stored`: its endpoints stored with its definition, as the
    catalog gives them (not: as stepd 0.1 stored a definition)."""
    routes = {"StartRecording": "/start", "StopRecording": "/stop"}
    return Machine(
        name="classroom",
        definition=CLASSROOM,
        definition_text=json.dumps(CLASSROOM),
        endpoints=EndpointMap(base_url="http://classroom.test", routes=routes),
        state_endpoints=routes if stored else {},
        late_threshold_seconds=30,
        late_policy=late_policy,
    )


async def _engine(store: Store, clock: Clock, caller: FakeCaller, **kw: Any) -> Engine:
    engine = new_engine(store, caller, clock)
    await engine.register({"classroom": _machine(**kw)})
    engine.set_timer(lambda _id, _due: None)
    return engine


async def _types(store: Store, execution_id: int) -> list[str]:
    return [
        e.type for e in await store.history(execution_id, reverse=False, limit=1000, after=None)
    ]


async def test_start_commits_the_first_wait_with_its_absolute_due_instant(store: Store):
    """A TimestampPath wait becomes an absolute due instant in the same commit as the start."""
    engine = await _engine(store, Clock(), FakeCaller())
    started = await engine.start_execution("classroom", "c1", INPUT)
    assert (started.created, started.execution.state, started.execution.due_at) == (
        True,
        "RecordingWait",
        T0 + 10,
    )
    assert await _types(store, started.execution.id) == ["ExecutionStarted", "WaitStateEntered"]


async def test_nothing_runs_before_its_due_instant(store: Store):
    """Advancing an execution early changes nothing and calls nothing."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 9.999
    await engine.advance(started.execution.id)
    assert (caller.calls, await _types(store, started.execution.id)) == (
        [],
        ["ExecutionStarted", "WaitStateEntered"],
    )


async def test_intent_is_committed_before_the_call_is_made(store: Store):
    """While the task is in flight the store already holds LambdaFunctionScheduled and
    LambdaFunctionStarted (the intent: the machine calls a Lambda function ARN)."""
    clock = Clock()
    caller = FakeCaller(store=store)
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    during = caller.calls[0]
    assert during.execution is not None
    assert (during.execution.phase, during.execution.task.sent) == ("task", True)
    assert during.events[-3:] == (
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
    )


async def test_a_call_in_flight_is_due_since_its_wait_ended(store: Store):
    """A task reached from a Wait is due, while its call is in flight and after a crash, at
    the instant its wait ended (its lateness counted from there), not when it was sent."""
    clock = Clock()
    caller = FakeCaller(store=store)
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 12.5  # sent 2.5 s after the wait ended
    await engine.advance(started.execution.id)
    during = caller.calls[0].execution
    assert during is not None
    assert (during.state, during.due_at, during.task.due) == ("StartRecording", T0 + 10, T0 + 10)


async def test_the_call_carries_the_state_input_and_a_key_naming_the_state_entry(
    store: Store,
):
    """The POST body is the effective input; the key is machine/name/entered-event-id."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    call = caller.calls[0]
    assert (call.url, call.payload, call.idempotency_key) == (
        "http://classroom.test/start",
        json.loads(INPUT),
        "classroom/c1/u1/4",
    )


async def test_a_seconds_wait_is_absolute_from_when_the_state_was_entered(store: Store):
    """Wait Seconds: 60 is due 60 s after entry, however late the engine looks at it."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10.5
    await engine.advance(started.execution.id)
    waiting = await store.get_execution(started.execution.id)
    assert waiting is not None
    assert (waiting.state, waiting.due_at) == ("PingWait", T0 + 10.5 + 60)


async def test_a_crash_after_the_intent_resends_with_the_same_key(store: Store):
    """A call whose result was never committed is sent again, with the same key, once."""
    clock = Clock()

    class Crash(BaseException):
        pass

    crashing = FakeCaller(Crash())
    engine = await _engine(store, clock, crashing)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    with pytest.raises(Crash):
        await engine.advance(started.execution.id)
    restarted_caller = FakeCaller()
    restarted = await _engine(store, clock, restarted_caller)
    clock.now = T0 + 11
    await restarted.advance(started.execution.id)
    after = await store.get_execution(started.execution.id)
    assert after is not None
    assert crashing.keys + restarted_caller.keys == [
        "classroom/c1/u1/4",
        "classroom/c1/u1/4",
    ]
    assert (after.state, restarted.stats.resends) == ("PingWait", 1)
    assert (await _types(store, after.id)).count("LambdaFunctionScheduled") == 1


async def test_a_retry_waits_its_interval_and_keeps_the_key(store: Store):
    """A 503 is retried after IntervalSeconds with the same idempotency key."""
    clock = Clock()
    caller = FakeCaller(TaskOutcome(error="States.Http.StatusCode.503", cause="503", status=503))
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    retrying = await store.get_execution(started.execution.id)
    assert retrying is not None
    assert (retrying.state, retrying.attempt, retrying.due_at) == ("StartRecording", 1, T0 + 12)
    clock.now = T0 + 12
    await engine.advance(started.execution.id)
    assert caller.keys == ["classroom/c1/u1/4"] * 2
    assert (await _types(store, started.execution.id))[3:] == [
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "WaitStateEntered",
    ]


async def test_retry_after_from_the_server_is_honoured(store: Store):
    """A 429 with Retry-After: 7 is not retried before 7 s, even if the retrier says 2 s."""
    clock = Clock()
    caller = FakeCaller(
        TaskOutcome(error="States.Http.StatusCode.429", status=429, retry_after=7.0)
    )
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    retrying = await store.get_execution(started.execution.id)
    assert retrying is not None
    assert retrying.due_at == T0 + 17


async def test_exhausted_retries_fail_the_execution_with_the_task_error(store: Store):
    """After MaxAttempts the error fails the execution, named as the caller named it."""
    clock = Clock()
    failure = TaskOutcome(error="States.Http.Socket", cause="connection refused")
    caller = FakeCaller(failure, failure, failure)
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    for at in (10, 12, 16):
        clock.now = T0 + at
        await engine.advance(started.execution.id)
    failed = await store.get_execution(started.execution.id)
    assert failed is not None
    assert (failed.status, failed.error, len(caller.calls)) == (
        "FAILED",
        "States.Http.Socket",
        3,
    )


async def test_a_stop_during_a_call_wins_over_its_result(store: Store):
    """An execution stopped while its call is in flight stays ABORTED; the result is dropped."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    caller.hold()
    advancing = asyncio.create_task(engine.advance(started.execution.id))
    await caller.wait_for(1)
    await engine.stop_execution("classroom", "c1", "Cancelled", "class deleted")
    caller.release()
    await advancing
    after = await store.get_execution(started.execution.id)
    assert after is not None
    assert (after.status, after.error, after.due_at) == ("ABORTED", "Cancelled", None)
    assert (await _types(store, after.id))[-1] == "ExecutionAborted"


async def test_whole_classroom_succeeds_with_complete_history(store: Store):
    """Run to the end: every step once, and a history AWS would recognise."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    for at in (10, 70, 3600):
        clock.now = T0 + at
        await engine.advance(started.execution.id)
    done = await store.get_execution(started.execution.id)
    assert done is not None
    assert (done.status, done.output) == ("SUCCEEDED", INPUT.replace(" ", ""))
    assert caller.urls == [
        "http://classroom.test/start",
        "http://classroom.test/stop",
    ]
    assert await _types(store, done.id) == [
        "ExecutionStarted",
        "WaitStateEntered",
        "WaitStateExited",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "WaitStateEntered",
        "WaitStateExited",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]


async def test_late_steps_are_counted_and_run_by_default(store: Store):
    """A step later than the threshold still runs (AWS's behaviour) and is counted."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10 + 45
    await engine.advance(started.execution.id)
    assert (len(caller.calls), engine.stats.steps_late) == (1, 1)


async def test_late_policy_fail_fails_a_late_task_without_calling_it(store: Store):
    """With late_policy = "fail", a task later than the threshold fails with stepd.StepLate."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller, late_policy=LATE_FAIL)
    started = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10 + 45  # the wait exits late; the task it leads to is as late
    await engine.advance(started.execution.id)
    clock.now += 1000
    await engine.advance(started.execution.id)
    failed = await store.get_execution(started.execution.id)
    assert failed is not None
    assert (failed.status, failed.error, caller.calls) == ("FAILED", "stepd.StepLate", [])


@pytest.mark.parametrize(
    ("function", "state"),
    [
        pytest.param("start_state", None, id="at-the-start"),
        pytest.param("enter", "RecordingWait", id="entering-a-state"),
        pytest.param("task_succeeded", "StartRecording", id="after-a-task-result"),
    ],
)
async def test_an_unexpected_error_in_a_step_fails_the_execution_and_logs_its_traceback(
    store: Store, monkeypatch: pytest.MonkeyPatch, function: str, state: str | None
):
    """Any exception inside a step (a bug) fails the execution with States.Runtime, and an
    error event names the execution and the state and carries the traceback."""

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(interpreter, function, broken)
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    with capture_logs(processors=[structlog.processors.dict_tracebacks]) as logs:
        started = await engine.start_execution("classroom", "c1", INPUT)
        clock.now = T0 + 10
        await engine.advance(started.execution.id)

    failed = await store.get_execution(started.execution.id)
    assert failed is not None
    assert (failed.status, failed.error) == ("FAILED", "States.Runtime")
    assert "a bug" in (failed.cause or "")
    [event] = [e for e in logs if e["event"] == "step.unexpected_error"]
    assert (event["log_level"], event["machine"], event["execution"], event["state"]) == (
        "error",
        "classroom",
        "c1",
        state,
    )
    [raised] = event["exception"]
    assert (raised["exc_type"], raised["exc_value"], raised["frames"][-1]["name"]) == (
        "RuntimeError",
        "a bug",
        "broken",
    )


@pytest.mark.parametrize(
    ("name", "input_text", "error"),
    [
        pytest.param("has space", "{}", InvalidName, id="space-in-name"),
        pytest.param("a/b", "{}", InvalidName, id="slash-in-name"),
        pytest.param("x" * 81, "{}", InvalidName, id="name-too-long"),
        pytest.param("ok", "{not json", InvalidExecutionInput, id="input-not-json"),
        pytest.param("ok", '{"a": NaN}', InvalidExecutionInput, id="input-nan"),
        pytest.param("ok", '{"a": 1e400}', InvalidExecutionInput, id="input-beyond-a-double"),
        pytest.param("ok", json.dumps({"a": "x" * 262_144}), InvalidExecutionInput, id="too-big"),
    ],
)
async def test_bad_starts_are_refused_and_store_nothing(
    store: Store, name: str, input_text: str, error: type[Exception]
):
    """Invalid names and inputs are refused before anything is written."""
    engine = await _engine(store, Clock(), FakeCaller())
    with pytest.raises(error):
        await engine.start_execution("classroom", name, input_text)
    assert await store.count_by_status() == {}


async def test_same_name_and_input_while_running_is_the_same_execution(store: Store):
    """StartExecution is idempotent while RUNNING; other input is ExecutionAlreadyExists."""
    engine = await _engine(store, Clock(), FakeCaller())
    first = await engine.start_execution("classroom", "c1", INPUT)
    again = await engine.start_execution("classroom", "c1", INPUT)
    assert (again.created, again.execution.id) == (False, first.execution.id)
    with pytest.raises(ExecutionAlreadyExists):
        await engine.start_execution("classroom", "c1", '{"start": "other"}')


async def test_a_machine_dropped_from_the_config_still_finishes_its_executions(
    store: Store,
):
    """Running executions of a removed machine keep their endpoints; new ones are refused."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    await engine.register({})
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    assert caller.urls == ["http://classroom.test/start"]
    with pytest.raises(StateMachineDoesNotExist):
        await engine.start_execution("classroom", "c2", INPUT)


def _renamed(base_url: str = "http://classroom.test") -> Machine:
    """The classroom machine with StartRecording renamed Begin, its endpoint line with it."""
    states = {
        "Begin" if name == "StartRecording" else name: state
        for name, state in CLASSROOM["States"].items()
    }
    recording_wait = states["RecordingWait"]
    assert isinstance(recording_wait, dict)
    states["RecordingWait"] = recording_wait | {"Next": "Begin"}
    definition = CLASSROOM | {"States": states}
    routes = {"Begin": "/begin", "StopRecording": "/stop"}
    return Machine(
        name="classroom",
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url=base_url, routes=routes),
        state_endpoints=routes,
    )


async def test_a_task_state_renamed_by_a_reload_is_called_where_its_definition_was_served(
    store: Store,
):
    """A running execution whose Task state the config names no more calls the endpoint its
    definition was served with, a path joined to the base URL configured now."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    started = await engine.start_execution("classroom", "c1", INPUT)
    await engine.register({"classroom": _renamed(base_url="http://moved.test")})
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    assert caller.urls == ["http://moved.test/start"]


async def test_a_definition_stored_without_endpoints_fails_a_task_the_config_names_no_more(
    store: Store,
):
    """Without endpoints stored with its definition (as stepd 0.1 stored it), the execution
    fails at the Task state the config names no more, as before, and nothing is sent."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller, stored=False)
    started = await engine.start_execution("classroom", "c1", INPUT)
    assert await store.get_definition_endpoints(started.execution.definition_id) == {}
    await engine.register({"classroom": _renamed()})
    clock.now = T0 + 10
    await engine.advance(started.execution.id)
    failed = await store.get_execution(started.execution.id)
    assert caller.urls == []
    assert failed is not None
    assert (failed.status, failed.error) == ("FAILED", "States.Runtime")
    assert "No endpoint is configured for the Task state 'StartRecording'" in (failed.cause or "")


async def test_closed_executions_past_retention_are_purged_and_running_ones_kept(
    store: Store,
):
    """Retention deletes closed executions (and their history) only, and frees their names."""
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller)
    done = await engine.start_execution("classroom", "done", INPUT)
    await engine.stop_execution("classroom", "done", None, None)
    running = await engine.start_execution("classroom", "running", INPUT)
    clock.now = T0 + 91 * 86_400
    purged = await engine.purge(90 * 86_400)
    assert (purged, await store.get_execution(done.execution.id)) == (1, None)
    assert await store.history(done.execution.id, reverse=False, limit=10, after=None) == []
    assert await store.get_execution(running.execution.id) is not None
    again = await engine.start_execution("classroom", "done", INPUT)
    assert again.created


async def test_a_name_used_again_after_retention_gets_new_keys(store: Store):
    """An execution started under a name whose old execution was purged sends its calls with
    keys the old one never used: each execution draws its own uid."""
    clock = Clock()
    caller = FakeCaller()
    engine = Engine(store=store, caller=caller, machines={}, arns=Arns(), clock=clock)
    await engine.register({"classroom": _machine()})
    engine.set_timer(lambda _id, _due: None)
    first = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 10
    await engine.advance(first.execution.id)
    await engine.stop_execution("classroom", "c1", None, None)
    clock.now = T0 + 3600
    assert await engine.purge(retention_seconds=60) == 1
    again = await engine.start_execution("classroom", "c1", INPUT)
    clock.now = T0 + 3600 + 10
    await engine.advance(again.execution.id)
    old_key, new_key = caller.keys
    assert first.execution.uid != again.execution.uid
    assert old_key != new_key
    assert old_key.startswith("classroom/c1/")
    assert new_key.startswith("classroom/c1/")


@pytest.mark.parametrize(
    ("uid", "key"),
    [("0123456789abcdef", "classroom/c1/0123456789abcdef/4"), (None, "classroom/c1/4")],
    ids=["started by this stepd", "started by stepd 0.1"],
)
def test_the_key_names_the_execution_and_the_state_entry(uid: str | None, key: str):
    """Keys carry the execution's uid; an execution stored by stepd 0.1 (no uid) keeps the
    key its calls were sent with then, so a re-send after the upgrade matches."""
    execution = Execution(
        id=1,
        machine="classroom",
        name="c1",
        definition_id=1,
        input="{}",
        start_date=T0,
        uid=uid,
        status="RUNNING",
        state_entered_event=4,
    )
    assert idempotency_key(execution) == key


async def test_calls_due_together_go_out_before_their_answers_are_recorded(store: Store):
    """At the top of the hour every call that is due is sent before the answers are
    committed (with 2 workers for 6 executions); then every answer is."""
    clock = Clock()
    answers_committed_at_each_call: list[int] = []

    def respond(_: Any) -> None:
        committed = sum(
            event.type == "LambdaFunctionSucceeded"
            for events in store.database.events.values()  # type: ignore[attr-defined]
            for event in events
        )
        answers_committed_at_each_call.append(committed)

    caller = FakeCaller(respond=respond)
    engine = Engine(
        uid=lambda: UID,
        store=store,
        caller=caller,
        machines={},
        arns=Arns(),
        clock=clock,
        random=lambda: 0.5,
        workers=2,
    )
    await engine.register({"classroom": _machine()})
    engine.set_timer(lambda _id, _due: None)
    ids = [
        (await engine.start_execution("classroom", f"c{n}", INPUT)).execution.id for n in range(6)
    ]
    clock.now = T0 + 10
    engine.start()
    for execution_id in ids:
        engine.dispatch(execution_id, T0 + 10)
    async with asyncio.timeout(5):
        for execution_id in ids:
            while "LambdaFunctionSucceeded" not in await _types(store, execution_id):
                await asyncio.sleep(0.01)
    await engine.drain(1)
    assert answers_committed_at_each_call == [0] * 6
    for execution_id in ids:
        assert (await store.get_execution(execution_id)).state == "PingWait"  # type: ignore[union-attr]


async def test_a_sweep_leaves_alone_the_executions_the_engine_has_in_hand(store: Store):
    """The timers' sweep finds every execution whose call went out overdue in the store until
    its answer is recorded; those the engine has in hand are not queued again (each would be
    read back from the store once more after its answer, only to be found handled)."""
    clock = Clock()
    definition = {
        "StartAt": "Deliver",
        "States": {"Deliver": {**CLASSROOM["States"]["StopRecording"]}},
    }
    engine = Engine(
        uid=lambda: UID,
        store=store,
        caller=FakeCaller(respond=lambda _: sweep()),
        machines={},
        arns=Arns(),
        clock=clock,
        random=lambda: 0.5,
        workers=2,
    )
    machine = Machine(
        name="once",
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url="http://classroom.test", routes={"Deliver": "/stop"}),
    )
    await engine.register({"once": machine})
    engine.set_timer(lambda _id, _due: None)
    ids = [(await engine.start_execution("once", f"c{n}", "{}")).execution.id for n in range(6)]
    reads: list[int] = []
    get_execution = store.get_execution

    async def counted(execution_id: int) -> Execution | None:
        reads.append(execution_id)
        return await get_execution(execution_id)

    def sweep() -> None:  # as the timers' sweep does, while calls are out and answers wait
        for execution_id in ids:
            engine.overdue(execution_id, T0)

    store.get_execution = counted  # type: ignore[method-assign]
    engine.start()
    for execution_id in ids:
        engine.dispatch(execution_id, T0)
    async with asyncio.timeout(5):
        for execution_id in ids:
            while (await get_execution(execution_id)).status == "RUNNING":  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await engine.drain(1)
    assert reads == []
