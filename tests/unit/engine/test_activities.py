"""Activities in the engine (MemoryStore, a fake clock, FakeCaller): a Task whose Resource is
an activity ARN queues its input for a worker and waits for its token's callback; an empty
queue answers no task when the poll's time is up; tasks of executions that moved on are not
handed out; an activity that does not exist fails the task."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.unit.engine.engine_support import Clock, one_state, running_engine, until

from stepd.errors import ActivityDoesNotExist, InvalidArn, InvalidName
from stepd.store.base import Store
from stepd.store.records import Execution
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
    """No such activity: the task fails with States.Runtime, saying to create it."""
    await store.open()
    engine = await running_engine(store, FakeCaller(), ACTIVITY_TASK, Clock())
    started = await engine.start_execution("m", "x", json.dumps({"room": "blue"}))

    execution = await closed_as(store, started.execution.id, "FAILED")
    assert execution.error == "States.Runtime"
    assert "CreateActivity" in (execution.cause or "")


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
