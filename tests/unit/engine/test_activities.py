"""Activities in the engine (MemoryStore, a fake clock, FakeCaller): a Task whose Resource is
an activity ARN queues its input for a worker and waits for its token's callback; an empty
queue answers no task when the poll's time is up; tasks of executions that moved on are not
handed out; an activity that does not exist fails the task."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from tests.unit.engine.engine_support import (
    T0,
    Clock,
    one_state,
    running_engine,
    types,
    until,
)

from stepd.errors import ActivityDoesNotExist, InvalidArn, InvalidName
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.store.sqlite import SqliteStore
from stepd.testing import FakeCaller, MemoryStore

ARN = "arn:aws:states:us-east-1:123456789012:activity:recorder"
ACTIVITY_TASK = one_state(
    {"Type": "Task", "Resource": ARN, "Parameters": {"room.$": "$.room"}, "HeartbeatSeconds": 30}
)


async def closed_as(store: Store, execution_id: int, status: str) -> Execution:
    """The execution once it has closed with `status`."""

    async def check() -> bool:
        execution = await store.get_execution(execution_id)
        return execution is not None and execution.status == status

    await until(check)
    execution = await store.get_execution(execution_id)
    assert execution is not None
    return execution


@pytest.fixture
def store() -> Store:
    return MemoryStore()


async def test_a_worker_gets_the_input_and_its_success_is_the_result(store: Store) -> None:
    """GetActivityTask hands out the state's effective input with a token; SendTaskSuccess
    with that token ends the task with its output; the caller is never called."""
    await store.open()
    caller = FakeCaller()
    engine = await running_engine(store, caller, ACTIVITY_TASK, Clock())
    await engine.activities.create("recorder")
    started = await engine.start_execution("m", "x", json.dumps({"room": "blue"}))
    task = await engine.activities.get_task(ARN, wait_seconds=5)
    assert task is not None
    assert json.loads(task.input) == {"room": "blue"}
    await engine.send_task_success(task.token, '{"video": "v.mp4"}')

    execution = await closed_as(store, started.execution.id, "SUCCEEDED")
    assert json.loads(execution.output or "") == {"video": "v.mp4"}
    assert caller.calls == []


async def test_the_history_has_aws_activity_events(store: Store) -> None:
    """As AWS records an activity Task: ActivityScheduled (its resource, input, timeout and
    heartbeat), ActivityStarted with the worker's name when a worker takes it, then
    ActivitySucceeded with the output; no Task* events."""
    await store.open()
    clock = Clock()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, clock)
    await engine.activities.create("recorder")
    started = await engine.start_execution("m", "x", json.dumps({"room": "blue"}))
    task = await engine.activities.get_task(ARN, wait_seconds=5, worker="box-7")
    assert task is not None
    await engine.send_task_success(task.token, '{"video": "v.mp4"}')
    await closed_as(store, started.execution.id, "SUCCEEDED")

    events = await store.history(started.execution.id, reverse=False, limit=100, after=None)
    by_type = {e.type: e.details for e in events}
    assert [t for t in await types(store, started.execution.id) if "Task" in t or "Act" in t] == [
        "TaskStateEntered",
        "ActivityScheduled",
        "ActivityStarted",
        "ActivitySucceeded",
        "TaskStateExited",
    ]
    assert by_type["ActivityScheduled"] == {
        "activityScheduledEventDetails": {
            "resource": ARN,
            "input": '{"room":"blue"}',
            "inputDetails": {"truncated": False},
            "heartbeatInSeconds": 30,
        }
    }
    assert by_type["ActivityStarted"] == {"activityStartedEventDetails": {"workerName": "box-7"}}
    assert by_type["ActivitySucceeded"] == {
        "activitySucceededEventDetails": {
            "output": '{"video":"v.mp4"}',
            "outputDetails": {"truncated": False},
        }
    }


async def test_a_failure_and_a_timeout_are_activity_events(store: Store) -> None:
    """SendTaskFailure records ActivityFailed (error, cause); a worker that took the task and
    sent no heartbeat records ActivityTimedOut with States.Timeout (as AWS reports a
    heartbeat's timeout), which a `States.Timeout` retrier retries; a
    worker taking no name records ActivityStarted without one."""
    await store.open()
    clock = Clock()
    definition = one_state(
        {
            "Type": "Task",
            "Resource": ARN,
            "HeartbeatSeconds": 30,
            "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1}],
        }
    )
    engine = await running_engine(store, FakeCaller(), definition, clock)
    await engine.activities.create("recorder")
    started = await engine.start_execution("m", "x", "{}")
    first = await engine.activities.get_task(ARN, wait_seconds=5)
    assert first is not None
    for later in (31, 33):  # no heartbeat: the task times out; a second later it is retried
        clock.now = T0 + later
        engine.dispatch(started.execution.id, clock.now)
        await asyncio.sleep(0.05)
    second = await engine.activities.get_task(ARN, wait_seconds=5)
    assert second is not None
    assert second.token != first.token
    await engine.send_task_failure(second.token, "Recorder.Jammed", "tape stuck")
    execution = await closed_as(store, started.execution.id, "FAILED")
    assert execution.error == "Recorder.Jammed"

    events = await store.history(started.execution.id, reverse=False, limit=100, after=None)
    activity = [(e.type, e.details) for e in events if e.type.startswith("Activity")]
    assert activity[1:3] == [
        ("ActivityStarted", {"activityStartedEventDetails": {}}),
        (
            "ActivityTimedOut",
            {"activityTimedOutEventDetails": {"error": "States.Timeout"}},
        ),
    ]
    assert activity[-1] == (
        "ActivityFailed",
        {"activityFailedEventDetails": {"error": "Recorder.Jammed", "cause": "tape stuck"}},
    )
    assert "TaskScheduled" not in await types(store, started.execution.id)


async def test_an_empty_queue_answers_no_task_when_the_poll_ends(store: Store) -> None:
    """No task within the poll's time: None (the API answers without a token)."""
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    await engine.activities.create("recorder")
    assert await engine.activities.get_task(ARN, wait_seconds=0.1) is None


async def test_a_waiting_poll_gets_a_task_queued_meanwhile(store: Store) -> None:
    """A poll waiting on an empty queue gets the task as soon as an execution queues it."""
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    await engine.activities.create("recorder")
    poll = asyncio.create_task(engine.activities.get_task(ARN, wait_seconds=5))
    await asyncio.sleep(0.05)
    await engine.start_execution("m", "x", json.dumps({"room": "red"}))
    task = await asyncio.wait_for(poll, 5)
    assert task is not None
    assert json.loads(task.input) == {"room": "red"}


async def test_a_stopped_executions_task_is_not_handed_out(store: Store) -> None:
    """A task whose execution was stopped while it waited in the queue is dropped."""
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    await engine.activities.create("recorder")
    started = await engine.start_execution("m", "x", json.dumps({"room": "blue"}))

    async def waiting() -> bool:
        execution = await store.get_execution(started.execution.id)
        return (
            execution is not None
            and execution.task is not None
            and execution.task.awaiting_callback
        )

    await until(waiting)
    await engine.stop_execution("m", "x", None, None)
    assert await engine.activities.get_task(ARN, wait_seconds=0.1) is None


async def test_a_task_of_an_activity_that_does_not_exist_fails(store: Store) -> None:
    """No such activity: the execution fails with States.Runtime and AWS's cause, nothing
    scheduled (AWS recorded TaskStateEntered then ExecutionFailed)."""
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    started = await engine.start_execution("m", "x", json.dumps({"room": "blue"}))

    execution = await closed_as(store, started.execution.id, "FAILED")
    assert execution.error == "States.Runtime"
    assert execution.cause == (
        "An error occurred while executing the state 'S' (entered at the event id #2). "
        f"The activity {ARN} does not exist."
    )
    assert await types(store, started.execution.id) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "ExecutionFailed",
    ]


async def test_bad_names_and_arns_are_refused(store: Store) -> None:
    """An activity name AWS would refuse, an ARN that is not an activity's, and one of an
    activity never created each get AWS's error."""
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    with pytest.raises(InvalidName):
        await engine.activities.create("no spaces")
    with pytest.raises(InvalidArn):
        await engine.activities.describe("arn:aws:states:us-east-1:123456789012:stateMachine:m")
    with pytest.raises(ActivityDoesNotExist):
        await engine.activities.get_task(ARN, wait_seconds=0.1)


async def test_an_activity_task_stored_by_an_earlier_stepd_completes(tmp_path: Path) -> None:
    """A running activity Task whose record an earlier stepd wrote (format 4: it recorded
    TaskScheduled and TaskStarted for it) completes, with the Task* events it began with."""
    store = SqliteStore(tmp_path / "stepd.db")
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    await engine.activities.create("recorder")
    started = await engine.start_execution("m", "x", json.dumps({"room": "blue"}))

    async def awaiting() -> bool:
        execution = await store.get_execution(started.execution.id)
        task = None if execution is None else execution.task
        return task is not None and task.answered_at is not None

    await until(awaiting)
    with sqlite3.connect(tmp_path / "stepd.db") as db:
        (text,) = db.execute(
            "SELECT pending FROM executions WHERE id = ?", (started.execution.id,)
        ).fetchone()
        record = json.loads(text)
        record["v"] = 4
        del record["task"]["activity"]
        db.execute(
            "UPDATE executions SET pending = ? WHERE id = ?",
            (json.dumps(record), started.execution.id),
        )
    task = await engine.activities.get_task(ARN, wait_seconds=5, worker="box-7")
    assert task is not None
    await engine.send_task_success(task.token, '{"video": "v.mp4"}')
    execution = await closed_as(store, started.execution.id, "SUCCEEDED")
    assert json.loads(execution.output or "") == {"video": "v.mp4"}
    kinds = await types(store, started.execution.id)
    assert "TaskSucceeded" in kinds
    assert "ActivitySucceeded" not in kinds
    assert "ActivityStarted" not in kinds
    engine.close()
    await store.close()
