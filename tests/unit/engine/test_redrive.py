"""RedriveExecution in the durable engine: a closed execution taken up where it failed, with
only the unfinished children of a Parallel or Map run again, and AWS's refusals.

The store is `MemoryStore`, the classroom server `FakeCaller`, the clock a fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.unit.engine.engine_support import (
    CALL,
    CALLING,
    T0,
    Clock,
    finished,
    one_state,
    running_engine,
    types,
)

from stepd.engine.executor import Engine
from stepd.errors import ExecutionDoesNotExist, ExecutionNotRedrivable
from stepd.store.base import Store
from stepd.store.records import NewEvent, Transition
from stepd.tasks.caller import TaskOutcome, TaskRequest
from stepd.testing import FakeCaller

DAY = 86_400.0

PREPARE_THEN_CALL = {
    "StartAt": "Prepare",
    "States": {"Prepare": {"Type": "Pass", "Next": "Deliver"}, "Deliver": CALL},
}


def failing_first(*payloads: Any) -> Callable[[TaskRequest], Any]:
    """Fail the first call whose payload is one of `payloads`; answer the others with it."""
    failed: set[str] = set()

    def respond(request: TaskRequest) -> Any:
        key = json.dumps(request.payload)
        if request.payload in payloads and key not in failed:
            failed.add(key)
            return TaskOutcome(error="Classroom.Down", cause="try later")
        return {"echo": request.payload}

    return respond


async def test_a_failed_task_redriven_succeeds(store: Store):
    """The failed Task is entered again with its input and called with a new key; the states
    before it do not run again, and the history goes on after ExecutionRedriven."""
    clock = Clock()
    caller = FakeCaller(respond=failing_first({"class": 42}))
    engine = await running_engine(store, caller, PREPARE_THEN_CALL, clock)
    started = await engine.start_execution("m", "x", json.dumps({"class": 42}))
    failed = await finished(store, started.execution.id)
    assert (failed.status, failed.error) == ("FAILED", "Classroom.Down")
    clock.now = T0 + 60
    redriven = await engine.redrive_execution("m", "x")
    assert (redriven.status, redriven.redrive_count, redriven.redrive_date) == (
        "RUNNING",
        1,
        T0 + 60,
    )
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", {"echo": {"class": 42}})
    assert (done.start_date, done.input) == (T0, failed.input)
    assert [c.payload for c in caller.calls] == [{"class": 42}, {"class": 42}]
    assert caller.keys[0] != caller.keys[1]
    history = await types(store, done.id)
    assert history.count("PassStateEntered") == 1
    assert history[history.index("ExecutionFailed") :] == [
        "ExecutionFailed",
        "ExecutionRedriven",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    events = await store.history(done.id, reverse=False, limit=100, after=None)
    redrive_event = next(e for e in events if e.type == "ExecutionRedriven")
    assert redrive_event.details == {"executionRedrivenEventDetails": {"redriveCount": 1}}
    assert [e.id for e in events] == list(range(1, len(events) + 1))


async def test_a_failed_map_redriven_runs_only_the_failed_iterations(store: Store):
    """Iterations that succeeded keep their output and are not called again; the failed one
    runs again and the ones never started start."""
    clock = Clock()
    caller = FakeCaller(respond=failing_first(2))
    definition = one_state({"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": CALLING})
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", json.dumps([1, 2, 3]))
    failed = await finished(store, started.execution.id)
    assert failed.status == "FAILED"
    assert [c.payload for c in caller.calls] == [1, 2]
    await engine.redrive_execution("m", "x")
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == (
        "SUCCEEDED",
        [{"echo": 1}, {"echo": 2}, {"echo": 3}],
    )
    assert [c.payload for c in caller.calls] == [1, 2, 2, 3]
    assert len(set(caller.keys)) == len(caller.keys)
    assert await store.running_cursors(done.id) == []


async def test_a_failed_parallel_branch_redriven_keeps_its_succeeded_sibling(store: Store):
    """Of a Parallel state, only the branch that failed runs again."""
    clock = Clock()
    caller = FakeCaller(respond=failing_first({"v": "b"}))
    branches = [
        {"StartAt": "Deliver", "States": {"Deliver": {**CALL, "Parameters": {"v": name}}}}
        for name in ("a", "b")
    ]
    engine = await running_engine(
        store, caller, one_state({"Type": "Parallel", "Branches": branches}), clock
    )
    started = await engine.start_execution("m", "x", "{}")
    assert (await finished(store, started.execution.id)).status == "FAILED"
    await engine.redrive_execution("m", "x")
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == (
        "SUCCEEDED",
        [{"echo": {"v": "a"}}, {"echo": {"v": "b"}}],
    )
    assert sorted(c.payload["v"] for c in caller.calls) == ["a", "b", "b"]


async def test_a_timed_out_execution_redriven_runs_its_unfinished_children(store: Store):
    """A Map timed out with calls in flight runs those iterations again after a redrive,
    with new keys, and its TimeoutSeconds counts from the redrive."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    definition = one_state({"Type": "Map", "ItemProcessor": CALLING}, TimeoutSeconds=30)
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", json.dumps([1, 2]))
    first = list(await caller.wait_for(2))
    clock.now = T0 + 30
    await engine.advance(started.execution.id)
    timed_out = await finished(store, started.execution.id)
    assert timed_out.status == "TIMED_OUT"
    caller.release()
    await asyncio.sleep(0.05)
    clock.now = T0 + 3600
    redriven = await engine.redrive_execution("m", "x")
    assert redriven.status == "RUNNING"
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", [{"ok": True}] * 2)
    again = caller.calls[2:]
    assert sorted(c.payload for c in again) == [1, 2]
    assert not {c.idempotency_key for c in again} & {c.idempotency_key for c in first}


async def test_an_aborted_execution_redriven_runs_from_where_it_stood(store: Store):
    """StopExecution leaves the state it stopped in; a redrive enters it again."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    engine = await running_engine(store, caller, PREPARE_THEN_CALL, clock)
    started = await engine.start_execution("m", "x", "{}")
    await caller.wait_for(1)
    stopped = await engine.stop_execution("m", "x", None, None)
    caller.release()
    assert stopped.status == "ABORTED"
    await engine.redrive_execution("m", "x")
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert done.status == "SUCCEEDED"
    assert (await types(store, done.id)).count("PassStateEntered") == 1


async def test_the_same_client_token_redrives_once(store: Store):
    """RedriveExecution repeated with its clientToken answers with the redrive it made."""
    clock = Clock()
    caller = FakeCaller()
    caller.hold()
    definition = one_state({"Type": "Fail", "Error": "Boom"})
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", "{}")
    await finished(store, started.execution.id)
    clock.now = T0 + 5
    first = await engine.redrive_execution("m", "x", "token-1")
    await finished(store, started.execution.id)
    clock.now = T0 + 10
    again = await engine.redrive_execution("m", "x", "token-1")
    await finished(store, started.execution.id)
    clock.now = T0 + 5 + 15 * 60 + 1  # AWS keeps a token 15 minutes: then it redrives again
    later = await engine.redrive_execution("m", "x", "token-1")
    await engine.drain(1.0)
    assert (first.redrive_count, again.redrive_count, again.redrive_date) == (1, 1, T0 + 5)
    assert (later.redrive_count, later.redrive_date) == (2, clock.now)


async def test_the_redrive_count_and_time_are_in_the_context_object(store: Store):
    """`$$.Execution.RedriveCount` is 0, then the number of redrives; `RedriveTime` is there
    only once the execution was redriven: when it last was."""
    clock = Clock()
    caller = FakeCaller(TaskOutcome(error="Boom"), TaskOutcome(error="Boom"))
    state = {**CALL, "Parameters": {"execution.$": "$$.Execution"}}
    definition = {"StartAt": "Deliver", "States": {"Deliver": state}}
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", "{}")
    await finished(store, started.execution.id)
    clock.now = T0 + 5.25
    await engine.redrive_execution("m", "x")
    await finished(store, started.execution.id)
    await engine.drain(1.0)
    seen = [
        (c.payload["execution"]["RedriveCount"], c.payload["execution"].get("RedriveTime"))
        for c in caller.calls
    ]
    assert seen == [(0, None), (1, "2027-01-15T08:00:05.250Z")]


ASSIGN_THEN_CALL = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Assign": {"room": "B12"}, "Next": "Deliver"},
        "Deliver": {**CALL, "Parameters": {"room.$": "$room"}},
    },
}


async def test_variables_assigned_before_a_failure_are_read_after_a_redrive(store: Store):
    """The state a redrive enters again reads the variables earlier states assigned."""
    clock = Clock()
    caller = FakeCaller(respond=failing_first({"room": "B12"}))
    engine = await running_engine(store, caller, ASSIGN_THEN_CALL, clock)
    started = await engine.start_execution("m", "x", "{}")
    assert (await finished(store, started.execution.id)).status == "FAILED"
    await engine.redrive_execution("m", "x")
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", {"echo": {"room": "B12"}})
    assert [c.payload for c in caller.calls] == [{"room": "B12"}] * 2


async def test_a_timed_out_execution_keeps_its_variables_for_a_redrive(store: Store):
    """An execution that ran past its TimeoutSeconds keeps its variables; a redrive reads them."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    engine = await running_engine(store, caller, {**ASSIGN_THEN_CALL, "TimeoutSeconds": 30}, clock)
    started = await engine.start_execution("m", "x", "{}")
    await caller.wait_for(1)
    clock.now = T0 + 30
    await engine.advance(started.execution.id)
    timed_out = await finished(store, started.execution.id)
    caller.release()
    await asyncio.sleep(0.05)
    assert (timed_out.status, timed_out.variables) == ("TIMED_OUT", '{"room":"B12"}')
    clock.now = T0 + 3600
    await engine.redrive_execution("m", "x")
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert done.status == "SUCCEEDED"
    assert [c.payload for c in caller.calls] == [{"room": "B12"}] * 2


async def test_a_redriven_jsonata_map_iteration_reads_the_outer_variables(store: Store):
    """A Map iteration run again by a redrive still reads the variables of the state around
    it, in a JSONata machine."""
    clock = Clock()
    caller = FakeCaller(respond=failing_first({"room": "B12", "item": 2}))
    deliver = {**CALL, "Arguments": {"room": "{% $room %}", "item": "{% $states.input %}"}}
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Assign": {"room": "B12"}, "Next": "Each"},
            "Each": {
                "Type": "Map",
                "Items": "{% $states.input %}",
                "ItemProcessor": {"StartAt": "Deliver", "States": {"Deliver": deliver}},
                "End": True,
            },
        },
    }
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", json.dumps([1, 2]))
    assert (await finished(store, started.execution.id)).status == "FAILED"
    await engine.redrive_execution("m", "x")
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert done.status == "SUCCEEDED"
    assert json.loads(done.output or "") == [
        {"echo": {"room": "B12", "item": 1}},
        {"echo": {"room": "B12", "item": 2}},
    ]


async def refused(engine: Engine) -> str:
    with pytest.raises(ExecutionNotRedrivable) as refusal:
        await engine.redrive_execution("m", "x")
    return str(refusal.value)


async def test_a_succeeded_execution_is_not_redrivable(store: Store):
    """A SUCCEEDED execution is refused with AWS's reason."""
    clock = Clock()
    engine = await running_engine(store, FakeCaller(), CALLING, clock)
    started = await engine.start_execution("m", "x", "{}")
    await finished(store, started.execution.id)
    assert await refused(engine) == "Execution is SUCCEEDED and cannot be redriven"
    await engine.drain(1.0)


async def test_a_running_execution_is_not_redrivable(store: Store):
    """A RUNNING execution is refused with AWS's reason."""
    clock = Clock()
    caller = FakeCaller()
    caller.hold()
    engine = await running_engine(store, caller, CALLING, clock)
    await engine.start_execution("m", "x", "{}")
    await caller.wait_for(1)
    assert await refused(engine) == "Execution is RUNNING and cannot be redriven"
    caller.release()
    await engine.drain(1.0)


async def test_an_execution_closed_over_14_days_ago_is_not_redrivable(store: Store):
    """Past 14 days after it closed, an execution is no longer redrivable."""
    clock = Clock()
    engine = await running_engine(store, FakeCaller(), one_state({"Type": "Fail"}), clock)
    started = await engine.start_execution("m", "x", "{}")
    await finished(store, started.execution.id)
    clock.now = T0 + 14 * DAY
    assert engine.redrive_refusal(started.execution) is None
    clock.now = T0 + 14 * DAY + 1
    assert await refused(engine) == "Execution redrivable period exceeded"


async def test_an_execution_with_24999_events_is_not_redrivable(store: Store):
    """An execution whose history holds 24,999 events leaves no room for a redrive."""
    clock = Clock()
    engine = await running_engine(store, FakeCaller(), one_state({"Type": "Fail"}), clock)
    started = await engine.start_execution("m", "x", "{}")
    failed = await finished(store, started.execution.id)
    padding = NewEvent(type="PassStateEntered", details={}, ts=T0)
    count = 24_999 - failed.last_event_id
    await store.commit(Transition(base=failed, progress=failed.progress, events=(padding,) * count))
    assert await refused(engine) == "Execution history event limit exceeded"


async def test_an_unknown_execution_does_not_exist(store: Store):
    """Redriving an execution that is not there raises ExecutionDoesNotExist."""
    engine = await running_engine(store, FakeCaller(), CALLING, Clock())
    with pytest.raises(ExecutionDoesNotExist):
        await engine.redrive_execution("m", "nobody")
