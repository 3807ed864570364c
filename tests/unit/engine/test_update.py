"""Updating a running execution (a class moved): its data, its Wait, its history."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.unit.engine.engine_support import new_engine

from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.inputs import InputSchema
from stepd.engine.machines import Machine
from stepd.errors import ExecutionDoesNotExist, ExecutionNotRunning, InvalidExecutionInput
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller, MemoryStore

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
CLASSROOM = {
    "StartAt": "RecordingWait",
    "States": {
        "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
        "StartRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:1:function:start",
            "ResultPath": "$.recording",
            "Next": "StoppingWait",
        },
        "StoppingWait": {"Type": "Wait", "TimestampPath": "$.end", "Next": "StopRecording"},
        "StopRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:1:function:stop",
            "ResultPath": None,
            "End": True,
        },
    },
}
SCHEMA = {
    "type": "object",
    "required": ["start", "end"],
    "properties": {"start": {"format": "date-time"}, "end": {"format": "date-time"}},
}
AN_HOUR = {"start": "2027-01-15T09:00:00Z", "end": "2027-01-15T10:00:00Z"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store():
    opened = MemoryStore()
    await opened.open()
    yield opened
    await opened.close()


async def _engine(
    store: Store, clock: Clock, caller: FakeCaller, armed: list[Any], *, schema: bool = True
) -> Engine:
    engine = new_engine(store, caller, clock)
    machine = Machine(
        name="classroom",
        definition=CLASSROOM,
        definition_text=json.dumps(CLASSROOM),
        endpoints=EndpointMap(
            base_url="http://classroom.test",
            routes={"StartRecording": "/start", "StopRecording": "/stop"},
        ),
        input_schema=InputSchema(SCHEMA, source="schema.json") if schema else None,
    )
    await engine.register({"classroom": machine})
    engine.set_timer(lambda execution_id, due: armed.append((execution_id, due)))
    return engine


async def _history(store: Store, execution: Execution) -> list[Any]:
    return await store.history(execution.id, reverse=False, limit=100, after=None)


async def test_moving_a_class_earlier_moves_its_wait_and_arms_the_timer(store: Store):
    armed: list[Any] = []
    engine = await _engine(store, Clock(), FakeCaller(), armed)
    started = (await engine.start_execution("classroom", "c1", json.dumps(AN_HOUR))).execution
    assert started.due_at == T0 + 3600
    moved = await engine.update_execution(
        "classroom", "c1", json.dumps({"start": "2027-01-15T08:00:03Z"}), merge=True, by="ops"
    )
    assert (moved.due_at, moved.state, moved.version) == (T0 + 3, "RecordingWait", 1)
    assert json.loads(moved.input) == {**AN_HOUR, "start": "2027-01-15T08:00:03Z"}
    assert armed[-1] == (moved.id, T0 + 3)
    event = (await _history(store, moved))[-1]
    details = event.details["executionUpdatedEventDetails"]
    assert event.type == "ExecutionUpdated"
    assert (details["previousDueAt"], details["dueAt"], details["updatedBy"]) == (
        T0 + 3600,
        T0 + 3,
        "ops",
    )
    assert json.loads(details["previousInput"]) == AN_HOUR


async def test_moving_a_class_later_does_not_run_it_at_the_old_time(store: Store):
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller, [])
    soon = {"start": "2027-01-15T08:00:05Z", "end": "2027-01-15T10:00:00Z"}
    started = (await engine.start_execution("classroom", "c1", json.dumps(soon))).execution
    await engine.update_execution("classroom", "c1", json.dumps(AN_HOUR), merge=False, by="x")
    clock.now = T0 + 5
    await engine.advance(started.id)  # the old timer fires
    assert caller.calls == []
    clock.now = T0 + 3600
    await engine.advance(started.id)
    assert [call.url for call in caller.calls] == ["http://classroom.test/start"]


@pytest.mark.parametrize(
    ("given", "merge", "says"),
    [
        pytest.param({"start": "2027-01-15T09:00:00Z"}, False, "end", id="schema-required"),
        pytest.param({"start": "not a time"}, True, "start", id="schema-format"),
        pytest.param([1, 2], True, "JSON object", id="merge-needs-an-object"),
    ],
)
async def test_an_input_the_machine_refuses_changes_nothing(
    store: Store, given: Any, merge: bool, says: str
):
    engine = await _engine(store, Clock(), FakeCaller(), [])
    started = (await engine.start_execution("classroom", "c1", json.dumps(AN_HOUR))).execution
    with pytest.raises(InvalidExecutionInput, match=says):
        await engine.update_execution("classroom", "c1", json.dumps(given), merge=merge, by="x")
    assert await store.get_execution(started.id) == started


async def test_a_wait_that_cannot_read_its_time_refuses_the_update(store: Store):
    """Without a schema the Wait itself is the check: no timestamp, no update."""
    engine = await _engine(store, Clock(), FakeCaller(), [], schema=False)
    started = (await engine.start_execution("classroom", "c1", json.dumps(AN_HOUR))).execution
    with pytest.raises(InvalidExecutionInput, match="RecordingWait"):
        await engine.update_execution(
            "classroom", "c1", json.dumps({"end": "2027-01-15T10:00:00Z"}), merge=False, by="x"
        )
    assert await store.get_execution(started.id) == started


async def test_a_closed_or_unknown_execution_is_refused(store: Store):
    engine = await _engine(store, Clock(), FakeCaller(), [])
    await engine.start_execution("classroom", "c1", json.dumps(AN_HOUR))
    stopped = await engine.stop_execution("classroom", "c1", None, None)
    with pytest.raises(ExecutionNotRunning, match="ABORTED"):
        await engine.update_execution("classroom", "c1", json.dumps(AN_HOUR), merge=True, by="x")
    assert await store.get_execution(stopped.id) == stopped
    with pytest.raises(ExecutionDoesNotExist):
        await engine.update_execution("classroom", "nope", "{}", merge=True, by="x")


async def test_a_call_in_flight_is_not_affected_and_its_result_lands_on_the_new_data(
    store: Store,
):
    clock, caller = Clock(), FakeCaller()
    engine = await _engine(store, clock, caller, [])
    soon = {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T10:00:00Z"}
    started = (await engine.start_execution("classroom", "c1", json.dumps(soon))).execution
    caller.hold()
    advancing = asyncio.create_task(engine.advance(started.id))
    await caller.wait_for(1)
    await engine.update_execution(
        "classroom", "c1", json.dumps({"end": "2027-01-15T11:00:00Z"}), merge=True, by="x"
    )
    caller.release()
    await advancing
    after = await store.get_execution(started.id)
    assert after is not None
    assert (after.state, after.due_at, len(caller.calls)) == ("StoppingWait", T0 + 3 * 3600, 1)
    assert caller.calls[0].payload["end"] == "2027-01-15T10:00:00Z"
    assert "recording" in json.loads(after.data or "{}")


async def test_a_jsonata_wait_reads_the_new_data_too(store: Store):
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Until",
        "States": {
            "Until": {"Type": "Wait", "Timestamp": "{% $states.input.start %}", "End": True}
        },
    }
    engine = Engine(
        uid=lambda: "u1",
        store=store,
        caller=FakeCaller(),
        machines={},
        arns=Arns(),
        clock=Clock(),
        random=lambda: 0.5,
    )
    await engine.register(
        {
            "j": Machine(
                name="j",
                definition=definition,
                definition_text=json.dumps(definition),
                endpoints=EndpointMap(base_url="http://classroom.test", routes={}),
            )
        }
    )
    engine.set_timer(lambda _id, _due: None)
    await engine.start_execution("j", "c1", json.dumps(AN_HOUR))
    moved = await engine.update_execution(
        "j", "c1", json.dumps({"start": "2027-01-15T08:30:00Z"}), merge=True, by="x"
    )
    assert moved.due_at == T0 + 1800
