"""Parallel and Map states in the durable engine: children as cursors, calls in flight at
once, failures that stop siblings, nested fan-outs, the machine-wide TimeoutSeconds, restarts.

The store is `MemoryStore`, the classroom server `FakeCaller`, the clock a fake.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.unit.engine.engine_support import (
    CALL,
    CALLING,
    T0,
    Clock,
    arm,
    finished,
    one_state,
    running_engine,
    types,
    until,
)

from stepd.engine import steps
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.store.base import Store
from stepd.store.records import QUEUED, Execution, Transition
from stepd.tasks.caller import TaskOutcome
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller, MemoryDatabase, MemoryStore

PASS_END = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


async def run(
    store: Store, definition: dict[str, Any], execution_input: Any, caller: FakeCaller | None = None
) -> Execution:
    clock = Clock()
    engine = await running_engine(store, caller or FakeCaller(), definition, clock)
    started = await engine.start_execution("m", "x", json.dumps(execution_input))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    return done


async def test_parallel_outputs_come_in_branch_order(store: Store):
    """Each branch gets the input; the outputs form an array in branch order."""
    branches = [
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": n, "End": True}}}
        for n in range(3)
    ]
    done = await run(store, one_state({"Type": "Parallel", "Branches": branches}), {})
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", [0, 1, 2])
    assert await types(store, done.id) == [
        "ExecutionStarted",
        "ParallelStateEntered",
        "ParallelStateStarted",
        *["PassStateEntered", "PassStateExited"] * 3,
        "ParallelStateExited",
        "ExecutionSucceeded",
    ]


async def test_at_most_max_concurrency_calls_are_in_flight(store: Store):
    """A Map with MaxConcurrency 2 has two calls in flight at once, never more."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    definition = one_state({"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": CALLING})
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", json.dumps([1, 2, 3, 4, 5]))
    await caller.wait_for(2)
    await asyncio.sleep(0.05)
    assert caller.held == 2
    caller.release()
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, len(caller.calls), len(set(caller.keys))) == ("SUCCEEDED", 5, 5)
    assert sorted(c.payload for c in caller.calls) == [1, 2, 3, 4, 5]


async def test_forty_iterations_call_at_once(store: Store):
    """Without MaxConcurrency, 40 iterations of a Map of 50 have their calls in flight at once."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    engine = await running_engine(
        store, caller, one_state({"Type": "Map", "ItemProcessor": CALLING}), clock
    )
    started = await engine.start_execution("m", "x", json.dumps(list(range(50))))
    await caller.wait_for(40)
    await asyncio.sleep(0.05)
    assert caller.held == 40
    caller.release()
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", [{"ok": True}] * 50)


async def test_answers_that_come_in_together_are_committed_together(store: Store):
    """The answers of 40 iterations that come in at once take a few commits, not 40; each
    iteration's events are all there and the Map's output is whole."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    engine = await running_engine(
        store, caller, one_state({"Type": "Map", "ItemProcessor": CALLING}), clock
    )
    answering: list[int] = []  # per commit, how many answers it records
    commit = store.commit

    async def counted(transition: Transition) -> Execution | None:
        answers = sum(e.type == "LambdaFunctionSucceeded" for e in transition.events)
        if answers:
            answering.append(answers)
        return await commit(transition)

    store.commit = counted  # type: ignore[method-assign]
    started = await engine.start_execution("m", "x", json.dumps(list(range(40))))
    await caller.wait_for(40)
    caller.release()
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", [{"ok": True}] * 40)
    assert sum(answering) == 40
    assert len(answering) < 10
    events = await types(store, done.id)
    assert events.count("MapIterationSucceeded") == events.count("LambdaFunctionSucceeded") == 40


async def test_a_failed_iteration_ends_its_task_and_its_siblings_as_aws_records(store: Store):
    """An iteration whose Task fails uncaught: MapIterationFailed, then its TaskStateAborted;
    the iteration still waiting is aborted (MapIterationAborted, WaitStateAborted), all before
    MapStateFailed, as AWS records a Map that fails (test_service_lambda_map_timeout)."""
    caller = FakeCaller(TaskOutcome(error="Boom", cause="c"))
    processor = {
        "StartAt": "Which",
        "States": {
            "Which": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "Nap"}],
                "Default": "Deliver",
            },
            "Nap": {"Type": "Wait", "Seconds": 100, "End": True},
            "Deliver": CALL,
        },
    }
    definition = one_state({"Type": "Map", "ItemsPath": "$.items", "Iterator": processor})
    engine = await running_engine(store, caller, definition, Clock())
    started = await engine.start_execution("m", "x", json.dumps({"items": [0, 1]}))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, done.error) == ("FAILED", "Boom")
    events = await types(store, done.id)
    failed_at = events.index("MapIterationFailed")
    assert events[failed_at:] == [
        "MapIterationFailed",
        "TaskStateAborted",
        "MapIterationAborted",
        "WaitStateAborted",
        "MapStateFailed",
        "ExecutionFailed",
    ]


async def test_a_failed_branch_stops_its_siblings(store: Store):
    """A branch failing fails the Parallel with its error; a sibling makes no further call."""
    caller = FakeCaller()
    caller.hold()
    slow = {
        "StartAt": "Deliver",
        "States": {"Deliver": {**CALL, "End": False, "Next": "Again"}, "Again": CALL},
    }
    slow["States"]["Deliver"].pop("End")
    failing = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "c"}}}
    clock = Clock()
    engine = await running_engine(
        store, caller, one_state({"Type": "Parallel", "Branches": [slow, failing]}), clock
    )
    started = await engine.start_execution("m", "x", "{}")
    done = await finished(store, started.execution.id)
    caller.release()
    await asyncio.sleep(0.05)
    await engine.drain(1.0)
    assert (done.status, done.error, done.cause) == ("FAILED", "Boom", "c")
    assert len(caller.calls) <= 1  # the slow branch's first call at most, never its second
    # the branch still calling is aborted before the Parallel fails, as AWS records it
    assert (await types(store, done.id))[-3:] == [
        "TaskStateAborted",
        "ParallelStateFailed",
        "ExecutionFailed",
    ]
    assert await store.running_cursors(done.id) == []


async def test_a_nested_map_gathers_each_level_in_order(store: Store):
    """A Map of Maps returns the nested arrays in item order."""
    inner = {
        "StartAt": "I",
        "States": {"I": {"Type": "Map", "ItemProcessor": PASS_END, "End": True}},
    }
    done = await run(
        store, one_state({"Type": "Map", "ItemProcessor": inner}), [[1, 2, 3], [4, 5], []]
    )
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", [[1, 2, 3], [4, 5], []])


async def test_a_map_retry_runs_the_whole_state_again(store: Store):
    """Retry on a Map re-runs every iteration: MapStateStarted again, no new MapStateEntered."""
    caller = FakeCaller(TaskOutcome(error="Busy"), TaskOutcome(error="Busy"))
    state = {
        "Type": "Map",
        "ItemProcessor": CALLING,
        "MaxConcurrency": 1,
        "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 0, "MaxAttempts": 3}],
    }
    done = await run(store, one_state(state), [1], caller)
    history = await types(store, done.id)
    assert (done.status, history.count("MapStateEntered"), history.count("MapStateStarted")) == (
        "SUCCEEDED",
        1,
        3,
    )


async def test_tolerated_failures_let_the_map_succeed(store: Store):
    """Failures within ToleratedFailureCount keep the Map going; their error stands in."""
    caller = FakeCaller(TaskOutcome(error="Nope", cause="why"))
    state = {
        "Type": "Map",
        "ItemProcessor": CALLING,
        "MaxConcurrency": 1,
        "ToleratedFailureCount": 1,
    }
    done = await run(store, one_state(state), [1, 2], caller)
    assert (done.status, json.loads(done.output or "")) == (
        "SUCCEEDED",
        [{"Error": "Nope", "Cause": "why"}, {"ok": True}],
    )


async def test_top_level_timeout_seconds_times_the_execution_out(store: Store):
    """Past the definition's TimeoutSeconds the execution is TIMED_OUT, its children stopped."""
    caller = FakeCaller()
    caller.hold()
    clock = Clock()
    definition = one_state({"Type": "Map", "ItemProcessor": CALLING}, TimeoutSeconds=30)
    engine = await running_engine(store, caller, definition, clock)
    started = await engine.start_execution("m", "x", json.dumps([1, 2]))
    await caller.wait_for(2)
    clock.now = T0 + 30
    await engine.advance(started.execution.id)
    done = await finished(store, started.execution.id)
    caller.release()
    await engine.drain(1.0)
    assert (done.status, done.error) == ("TIMED_OUT", "States.Timeout")
    assert (await types(store, done.id))[-1] == "ExecutionTimedOut"
    assert await store.running_cursors(done.id) == []


async def test_a_map_continues_after_a_restart_resending_only_calls_in_flight(store: Store):
    """A new engine on the same data re-sends the calls in flight, with their keys, and
    finishes the Map without calling any iteration twice otherwise."""
    database = MemoryDatabase()
    first_store = MemoryStore(database)
    await first_store.open()
    first = FakeCaller()
    first.hold()
    clock = Clock()
    definition = one_state({"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": CALLING})
    engine = await running_engine(first_store, first, definition, clock)
    started = await engine.start_execution("m", "x", json.dumps([1, 2, 3, 4]))
    in_flight = await first.wait_for(2)
    engine.close()
    await engine.drain(0.0)
    await first_store.close()
    second_store = MemoryStore(database)
    await second_store.open()
    second = FakeCaller()
    restarted = await running_engine(second_store, second, definition, clock)
    await restarted.advance(started.execution.id)
    done = await finished(second_store, started.execution.id)
    await restarted.drain(1.0)
    assert done.status == "SUCCEEDED"
    assert sorted(second.keys[:2]) == sorted(c.idempotency_key for c in in_flight)
    assert sorted(c.payload for c in second.calls) == [1, 2, 3, 4]


async def test_a_late_iteration_follows_the_machines_late_policy(store: Store):
    """An iteration's task later than the machine's threshold, under late_policy "fail",
    fails with stepd.StepLate without being called, as a top-level task does."""
    waiting = {
        "StartAt": "Pause",
        "States": {"Pause": {"Type": "Wait", "Seconds": 10, "Next": "Deliver"}, "Deliver": CALL},
    }
    definition = one_state({"Type": "Map", "ItemProcessor": waiting})
    caller = FakeCaller()
    clock = Clock()
    engine = Engine(
        uid=lambda: "u1", store=store, caller=caller, machines={}, arns=Arns(), clock=clock
    )
    strict = Machine(
        name="m",
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url="http://classroom.test", routes={"Deliver": "/deliver"}),
        late_threshold_seconds=1,
        late_policy="fail",
    )
    await engine.register({"m": strict})
    engine.set_timer(lambda execution_id, due: arm(engine, clock, execution_id, due))
    engine.start()
    started = await engine.start_execution("m", "x", json.dumps([1, 2]))

    async def both_waiting() -> bool:
        cursors = await store.running_cursors(started.execution.id)
        return [c.phase for c in cursors].count("wait") == 2

    await until(both_waiting)
    clock.now = T0 + 100  # the daemon was away: the tasks fell due 90 s ago
    engine.dispatch(started.execution.id, clock.now)
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, done.error, caller.calls) == ("FAILED", "stepd.StepLate", [])


KEEP = {
    "StartAt": "Deliver",
    "States": {"Deliver": {**CALL, "ResultPath": None}},  # the item is the iteration's output
}
SELECTED = {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "u.$": "States.UUID()"}


def _count_unfinished(store: MemoryStore, counts: list[int]) -> None:
    """After each commit, how many child rows are queued or running, in `counts`."""
    commit = store.commit

    async def counting(transition: Any) -> Any:
        committed = await commit(transition)
        rows = store.database.cursors.get(transition.base.id, {}).values()
        counts.append(sum(r.cursor.status in {QUEUED, "RUNNING"} for r in rows))
        return committed

    store.commit = counting  # type: ignore[method-assign]


async def test_a_map_creates_its_children_a_window_at_a_time(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
):
    """With a window of 4 and MaxConcurrency 2, a Map of 23 never has more than 4 children
    waiting for a slot and 2 running; each iteration gets the input its entry gave it (index,
    item, a UUID of its own) and the outputs come in item order."""
    monkeypatch.setattr(steps, "CHILD_WINDOW", 4)
    counts: list[int] = []
    _count_unfinished(store, counts)
    state = {"Type": "Map", "MaxConcurrency": 2, "ItemSelector": SELECTED, "ItemProcessor": KEEP}
    caller = FakeCaller()
    done = await run(store, one_state(state), [f"x{n}" for n in range(23)], caller)
    output = json.loads(done.output or "")
    assert done.status == "SUCCEEDED"
    assert [(o["i"], o["v"]) for o in output] == [(n, f"x{n}") for n in range(23)]
    assert len({o["u"] for o in output}) == 23
    assert sorted(c.payload["i"] for c in caller.calls) == list(range(23))
    assert 0 < max(counts) <= 4 + 2
    assert (await types(store, done.id)).count("MapIterationStarted") == 23


async def test_a_map_stored_with_every_child_queued_runs_on(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
):
    """A Map that an earlier stepd fanned out (every child created at once, queued) runs on
    with the children it stored, creating none again."""
    monkeypatch.setattr(steps, "CHILD_WINDOW", 1000)  # as the fan-out was before windows
    caller = FakeCaller()
    caller.hold()
    state = {"Type": "Map", "MaxConcurrency": 2, "ItemProcessor": KEEP}
    engine = await running_engine(store, caller, one_state(state), Clock())
    started = await engine.start_execution("m", "x", json.dumps(list(range(9))))
    await caller.wait_for(2)
    queued = store.database.cursors[started.execution.id]
    assert sum(r.cursor.status == QUEUED for r in queued.values()) == 7
    monkeypatch.setattr(steps, "CHILD_WINDOW", 2)
    made: list[int] = []
    more = steps.Step.more_children
    monkeypatch.setattr(steps.Step, "more_children", lambda s, f: made.append(f) or more(s, f))
    caller.release()
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    assert (done.status, json.loads(done.output or ""), made) == ("SUCCEEDED", list(range(9)), [])
